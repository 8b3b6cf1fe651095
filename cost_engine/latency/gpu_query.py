"""What the GPU reports about itself now, read with ``nvidia-smi`` (no NVML binding, no CUDA
context, so the server and the fingerprint can ask without touching the device): the clocks and
throttle reasons each measurement records, the driver and SKU in the fingerprint, the free memory
admission checks."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["gpu_clocks", "nvidia_smi"]


def nvidia_smi(index: int | str, fields: tuple[str, ...]) -> dict[str, str]:
    """``fields`` of GPU ``index`` now, read with ``nvidia-smi --query-gpu`` (no NVML binding, no
    CUDA context); empty when it cannot be read."""
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", f"--query-gpu={','.join(fields)}",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    values = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(fields, values, strict=False))


def gpu_clocks(index: int) -> dict[str, Any]:
    """SM and memory clocks, temperature, power and the active throttle reasons now, and the
    driver (:func:`nvidia_smi`); empty when they cannot be read."""
    got = nvidia_smi(index, ("clocks.sm", "clocks.mem", "clocks.max.sm", "temperature.gpu", "power.draw",
                             "clocks_throttle_reasons.active", "driver_version"))
    if not got:
        return {}
    reasons = got.get("clocks_throttle_reasons.active", "")
    try:
        # bit 0 is "GPU idle", not a throttle; anything else (power, thermal, sync boost...) is
        mask = int(reasons, 16) if reasons.startswith("0x") else int(reasons or 0)
    except ValueError:
        mask = 0
    return {**got, "throttled": bool(mask & ~0x1)}
