"""``cost-oracle info``: versions, cost-model version, devices, limits and spec kinds of an oracle."""

from __future__ import annotations

import argparse
from typing import Any

from cost_oracle.client.cli._common import add_target_args, emit_json, open_oracle


def register(sub: Any) -> None:
    p = sub.add_parser("info", help="versions, cost-model version, devices, limits, spec kinds",
                       description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_target_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_oracle(args) as oracle:
        data = oracle.info().to_dict()
    if args.json:
        emit_json(data)
        return 0
    print(f"server version      {data.get('server_version', '')}")
    print(f"cost model version  {data.get('cost_model_version', '')}")
    print(f"latency protocol    {data.get('latency_protocol_version', '')}")
    print(f"cache backend       {data.get('cache_backend', '')}")
    print(f"auth required       {data.get('auth_required', False)}")
    for name, version in sorted((data.get("versions") or {}).items()):
        print(f"  {name:<18}{version}")
    print("devices:")
    for dev in data.get("devices") or []:
        fp = dev.get("fingerprint") or {}
        desc = fp.get("cpu_model") or fp.get("gpu_name") or fp.get("name") or ""
        print(f"  {dev.get('name', '')}  {desc}".rstrip())
    limits = data.get("limits") or {}
    if limits:
        print("limits:  " + ", ".join(f"{k}={v}" for k, v in limits.items()))
    print("spec kinds: " + ", ".join(data.get("spec_kinds") or []))
    print("sweep families: " + ", ".join(data.get("sweep_families") or []))
    print(f"built-in models: {len(data.get('builtins') or [])} (see `cost-oracle list`)")
    return 0
