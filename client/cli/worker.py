"""``cost-oracle worker``: measure latency jobs of a measurement fleet on this host's device.

Servers run with ``--measure-on fleet`` enqueue their latency measurements in a job table of the
shared PostgreSQL; a worker registers this host's device fingerprint (with a heartbeat), claims
jobs for it one at a time, measures them with the same protocol a local server uses, and stores
the results in the shared cache. Run one per device (``--device cuda:0``, ``--device cuda:1``) or,
on a CPU host, one per set of cores it may use (``--device cpu --threads N``). SIGTERM or Ctrl-C
stops it after the job in hand.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from cost_oracle.client.cli._common import UsageError

DB_URL_ENV = "COST_ORACLE_DB_URL"


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="measure latency jobs of a fleet on this host's device",
                       description=__doc__)
    p.add_argument("--db-url", dest="db_url", help=f"the shared PostgreSQL (postgresql+psycopg://...; ${DB_URL_ENV})")
    p.add_argument("--device", default="cpu", help="the device this worker measures on: cpu, cuda:0, ... (default cpu)")
    p.add_argument("--threads", type=int, help="CPU threads for a measurement that names none (default: the usable "
                                               "cores)")
    p.add_argument("--lease", dest="lease_s", type=float, default=30.0,
                   help="seconds a claimed job stays this worker's without a heartbeat (default 30)")
    p.add_argument("--max-jobs", dest="max_jobs", type=int, help="stop after this many jobs (default: run until "
                                                                 "stopped)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cost_oracle.server.fleet_worker import FleetWorker  # the worker runs the server's side here

    url = args.db_url or os.environ.get(DB_URL_ENV)
    if not url or not url.startswith("postgresql"):
        raise UsageError("--db-url", "the fleet needs the shared PostgreSQL URL (postgresql+psycopg://...)")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise UsageError("--threads", f"must be in [1, 1024], got {args.threads}")
    if not args.lease_s > 0:
        raise UsageError("--lease", f"must be > 0, got {args.lease_s}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    worker = FleetWorker(url, args.device, threads=args.threads, lease_s=args.lease_s)

    def stop(*_: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"cost-oracle worker {worker.worker_id}: serving {worker.device} (fingerprint {worker.fid}, "
          f"{worker.threads} threads)", file=sys.stderr, flush=True)
    worker.run(max_jobs=args.max_jobs)
    print(f"cost-oracle worker {worker.worker_id}: stopped after {worker.done} done, {worker.failed} failed",
          file=sys.stderr, flush=True)
    return 0
