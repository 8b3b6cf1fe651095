"""The device fingerprint: what a latency number is only true for.

A latency measured on one CPU model, torch build or GPU SKU says little about another, so the
fingerprint is hashed into every latency cache key: a shared (PostgreSQL) cache never serves a
number timed on different hardware or software. It deliberately leaves out the host name — two
identical machines may share measurements — and anything that varies between runs (clock speed).
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any

from cost_engine.latency.settings import UnknownDevice, usable_cores


@functools.cache
def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def _software() -> dict[str, Any]:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


@functools.cache
def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - broken driver: no CUDA devices
        return 0


def available_devices() -> list[str]:
    """``["cpu", "cuda:0", ...]``: the devices this host can time on."""
    return ["cpu"] + [f"cuda:{i}" for i in range(_cuda_count())]


def check_device(device: str) -> None:
    devices = available_devices()
    if device not in devices:
        raise UnknownDevice(device, devices)


@functools.cache
def _gpu(index: int) -> dict[str, Any]:
    import torch

    from cost_engine.latency.gpu_query import gpu_clocks

    props = torch.cuda.get_device_properties(index)
    smi = gpu_clocks(index)  # the driver and the SKU's top SM clock; clocks *now* go in each result
    return {"gpu_name": props.name, "gpu_capability": f"{props.major}.{props.minor}",
            "gpu_memory_bytes": int(props.total_memory), "gpu_sms": int(props.multi_processor_count),
            "gpu_driver": smi.get("driver_version"), "gpu_max_sm_clock_mhz": smi.get("clocks.max.sm")}


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """Device name, CPU model or GPU SKU, torch / CUDA / cuDNN versions and the thread count.

    Raises :class:`UnknownDevice` for a device this host lacks.
    """
    device = "cuda:0" if device == "cuda" else device
    check_device(device)
    fp: dict[str, Any] = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "threads": threads if threads is not None else usable_cores(),
        **_software(),
    }
    if device.startswith("cuda"):
        fp.update(_gpu(int(device.split(":")[1])))
        fp["device_name"] = fp["gpu_name"]
    else:
        fp["device_name"] = fp["cpu_model"]
    return fp
