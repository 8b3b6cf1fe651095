"""Fresh measurement worker processes, started with the environment the protocol needs.

Why a fresh process per session, and why the environment is set *before* it starts:

* glibc's allocator returns large freed blocks to the OS (``mmap`` above a threshold that moves
  with what the process has freed before, and heap trimming), so oneDNN's per-call buffers are
  page-faulted afresh on every call — on these machines that moved one conv 1.8x at batch 1 and
  a depthwise block 5-6x at batch 32, *depending on what the process had run before*. The fix
  (``MALLOC_MMAP_MAX_=0``: never mmap; ``MALLOC_TRIM_THRESHOLD_`` huge: never trim;
  ``MALLOC_TOP_PAD_``: grow the heap in large steps) is read by glibc when the process starts,
  so it cannot be applied to a running server. Each result records minor page faults per call
  so the fix is visible (≈0) rather than assumed.
* OpenMP reads ``OMP_NUM_THREADS`` when its runtime starts; the worker also calls
  ``torch.set_num_threads`` and reports ``torch.get_num_threads()`` as it was while timing
  (``torch.utils.benchmark.Timer`` silently times with 1 thread unless told otherwise).
* Timings within one process agree with each other far better than with another process (up to
  20x smaller spread on these machines: memory layout, allocator state, thread placement), so a
  measurement runs several sessions in fresh processes and reports the spread across them.

Child side: ``python -c "<_BOOTSTRAP>" OUT.json`` (``main`` below) reads one job (JSON) on stdin —
plain data only, the spec is parsed by ``from_dict`` and built by the engine, nothing is
imported or unpickled from it — and writes its result to ``OUT.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cost_engine.latency.gpu_query import gpu_clocks

#: glibc malloc settings of every measurement process (see the module docstring)
ALLOCATOR_ENV = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "MALLOC_TOP_PAD_": str(64 << 20),
}
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: the worker's entry point (``-m cost_engine.latency.worker`` would import this module twice)
_BOOTSTRAP = "import sys; from cost_engine.latency.worker import main; sys.exit(main(sys.argv))"
#: the nice value measurement workers ask for (see ``raise_priority``); "off" leaves it alone
NICE_ENV = "COST_ORACLE_MEASURE_NICE"
#: seconds a worker may take to start (import torch, build) before its items' own budget
STARTUP_BUDGET_S = 120.0


class MeasurementError(RuntimeError):
    """A worker process failed, timed out, or could not run an item."""


def worker_env(threads: int, allocator_fix: bool = True) -> dict[str, str]:
    """The environment of a worker: this one, with the allocator and thread settings forced.

    ``allocator_fix=False`` exists only to demonstrate the trap (tests, benchmarks): it removes
    the malloc variables instead of setting them.
    """
    env = dict(os.environ)
    for name in ALLOCATOR_ENV:
        env.pop(name, None)
    if allocator_fix:
        env.update(ALLOCATOR_ENV)
    for name in THREAD_ENV_VARS:
        env[name] = str(threads)
    # the worker imports this package from wherever the parent found it
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def device_lock(device: str) -> Iterator[None]:
    """Exclusive use of a device for timing: across threads (a lock) and across processes on
    this host (``flock`` on a file per device), so two measurements never overlap."""
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(device, threading.Lock())
    path = Path(tempfile.gettempdir()) / f"cost-oracle-latency-{device.replace(':', '-')}.lock"
    with lock, open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_session(job: dict[str, Any], *, allocator_fix: bool = True, timeout_s: float | None = None) -> dict[str, Any]:
    """Run one job in one fresh worker process, holding the device, and return its result."""
    settings = job["settings"]
    if timeout_s is None:
        timeout_s = STARTUP_BUDGET_S + _job_budget(job)
    env = worker_env(int(settings["threads"]), allocator_fix)
    with tempfile.TemporaryDirectory(prefix="cost-oracle-worker-") as tmp:
        out = Path(tmp) / "result.json"
        with device_lock(settings["device"]):
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, str(out)],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=env, text=True)
            try:
                _, stderr = proc.communicate(json.dumps(job), timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise MeasurementError(f"measurement worker timed out after {timeout_s:.0f} s") from None
            wall = time.perf_counter() - started
        if proc.returncode != 0 or not out.exists():
            tail = (stderr or "").strip().splitlines()[-5:]
            raise MeasurementError(f"measurement worker failed (exit {proc.returncode}): " + " | ".join(tail))
        result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


def _job_budget(job: dict[str, Any]) -> float:
    total = 0.0
    for item in job.get("items", []):
        p = item.get("protocol") or job["protocol"]
        # warm-up + sampling cap (twice: the reference is timed beside the candidate) + a slow
        # last block + the first calls, generously
        total += 4 * (p["warmup_s"] + 2 * p["time_cap_s"]) + 30
    if job.get("calibrate"):
        total += 120
    return total + 60


# -- child side ---------------------------------------------------------------------------------
def _runner(torch: Any, spec_dict: dict[str, Any], shape: tuple[int, ...], settings: Any,
            device: Any) -> Any:
    """A zero-argument call of the built module on a random non-zero input."""
    from cost_engine.modules import build
    from cost_engine.spec import from_dict

    torch.manual_seed(0)
    dtype = getattr(torch, settings.dtype)
    module = build(from_dict(spec_dict), input_shape=shape).eval()
    rank4 = len(shape) == 4
    fmt = torch.channels_last if settings.memory_format == "channels_last" and rank4 else torch.contiguous_format
    module = module.to(device=device, dtype=dtype)
    if fmt is torch.channels_last:
        module = module.to(memory_format=torch.channels_last)
    x = torch.randn(shape, device=device, dtype=dtype)
    x = torch.where(x == 0, torch.ones_like(x), x).contiguous(memory_format=fmt)  # non-zero everywhere
    run = torch.compile(module) if settings.compile else module
    if settings.cuda_graphs and device.type == "cuda":
        return _graph_of(torch, lambda: run(x))
    return lambda: run(x)


def _graph_of(torch: Any, fn: Any) -> Any:
    """``fn`` captured as a CUDA graph (after warm-up on a side stream, as PyTorch requires;
    compilation and cuDNN autotuning happen there, never inside a sample): replay is the call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _l2_flush(torch: Any, device: Any) -> Any:
    """A call that evicts the GPU's L2 cache: writes a buffer twice its size (256 MiB when the
    size is unknown), as triton's ``do_bench`` does."""
    l2 = int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or (128 << 20))
    buf = torch.empty(2 * l2, dtype=torch.int8, device=device)
    return buf.zero_


def _time_item(torch: Any, item: dict[str, Any], settings: Any, default_protocol: Any, device: Any,
               references: dict[str, Any]) -> dict[str, Any]:
    """Time one item: paired with its reference when the item names one (every measurement),
    alone otherwise (the canary). ``references`` keeps each reference built once per session."""
    from cost_engine.latency.protocol import Protocol, time_call, time_paired

    protocol = Protocol.from_dict(item["protocol"]) if item.get("protocol") else default_protocol
    cuda = device if device.type == "cuda" else None
    flush = _l2_flush(torch, device) if cuda is not None and settings.l2 == "cold" else None
    before = gpu_clocks(device.index or 0) if cuda is not None else {}
    ref = item.get("reference")
    with torch.inference_mode():
        if "unit" in item:  # a kernel unit, rebuilt from its op records (data, never code)
            from cost_engine.latency.kernel_build import build_unit

            fn = build_unit(item["unit"], torch, device, getattr(torch, settings.dtype))
        else:
            fn = _runner(torch, item["spec"], tuple(item["input_shape"]), settings, device)
        if ref is None:
            timing = time_call(fn, protocol, cuda_device=cuda, flush=flush)
        else:
            rid = json.dumps(ref, sort_keys=True)
            if rid not in references:
                references[rid] = _runner(torch, ref["spec"], tuple(ref["input_shape"]), settings, device)
            timing = time_paired(fn, references[rid], protocol, cuda_device=cuda, flush=flush)
            timing["reference"] = ref.get("name")
    if cuda is not None:  # clocks and throttling around the sampling, as the result reports them
        after = gpu_clocks(device.index or 0)
        timing["gpu_clocks"] = {"before": before, "after": after}
        timing["throttled"] = bool(before.get("throttled") or after.get("throttled"))
    timing["id"] = item.get("id")
    timing["threads"] = torch.get_num_threads()
    return timing


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Child side: set threads, time the canary, the items, the canary again, and calibrate."""
    from cost_engine.latency.protocol import Protocol
    from cost_engine.latency.settings import LatencySettings

    settings = LatencySettings(**job["settings"])
    import torch

    torch.set_num_threads(int(settings.threads or 1))
    device = torch.device(settings.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    else:
        # denormals from deep random-weight networks would make the CPU time a microcode slow path
        torch.set_flush_denormal(True)
    protocol = Protocol.from_dict(job["protocol"])
    result: dict[str, Any] = {
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in (*ALLOCATOR_ENV, *THREAD_ENV_VARS)},
        "items": [],
    }
    if job.get("canary"):
        from cost_engine.latency.canary import canary_item

        result["canary_before"] = _time_item(torch, canary_item(), settings, protocol, device, {})
    references: dict[str, Any] = {}
    for item in job.get("items", []):
        try:
            result["items"].append(_time_item(torch, item, settings, protocol, device, references))
        except Exception as exc:  # one bad item must not lose the session's other timings
            result["items"].append({"id": item.get("id"), "error": f"{type(exc).__name__}: {exc}"})
    if job.get("canary"):
        result["canary_after"] = _time_item(torch, canary_item(), settings, protocol, device, {})
    if job.get("calibrate"):
        from cost_engine.latency.calibration_kernels import calibrate_in_worker

        result["calibration"] = calibrate_in_worker(torch, device, settings.dtype, protocol)
    result["threads_after"] = torch.get_num_threads()
    return result


def raise_priority(env: str | None = None) -> int:
    """Lower this process's nice value as far as allowed (before torch starts any thread, which
    inherits it), and return the nice value it runs at.

    On a host where other processes compete for the cores, the scheduler time-slices a 20 ms
    forward pass with them, and what a slice costs (caches refilled, a migration) differs by
    network, so even the paired ratio moved by 10% here with two busy processes on two cores.
    At nice -20 the measurement gets ~99% of a core it shares with a nice-0 process. Without
    the privilege (not root, no CAP_SYS_NICE) the lowest permitted value is used, which may be
    the current one; ``COST_ORACLE_MEASURE_NICE`` sets the target (``off``: leave it alone).
    It cannot help against a hypervisor's other guests: that is what the pairing is for.
    """
    want = (env if env is not None else os.environ.get(NICE_ENV, "-20")).strip().lower()
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if want in ("off", "none", ""):
        return current
    try:
        target = int(want)
    except ValueError:
        return current
    for value in range(target, current):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, value)
            return value
        except (PermissionError, OSError):
            continue
    return current


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -c '<worker._BOOTSTRAP>' OUT.json < job.json", file=sys.stderr)
        return 2
    nice = raise_priority()
    job = json.loads(sys.stdin.read())
    result = run_job(job)
    result["nice"] = nice
    tmp = argv[1] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
