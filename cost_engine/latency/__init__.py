"""Latency: honest measurement on a real device, prediction for the rest, and latency budgets.

Nothing here imports torch at module level: timing runs in fresh worker processes
(``python -m cost_engine.latency.worker``), and the parent only imports torch to list devices and
fingerprint them. See ``protocol.py`` for the published timing protocol.
"""

from cost_engine.latency.budget import LatencyBudgetResult, filter_by_latency
from cost_engine.latency.calibrate import Calibration, calibrate
from cost_engine.latency.fingerprint import available_devices, fingerprint
from cost_engine.latency.keys import PROTOCOL_VERSION
from cost_engine.latency.measure import latency_key, measure, measure_many
from cost_engine.latency.memory_cache import MemoryCache
from cost_engine.latency.predict import Residual, fit_residual, predict, predict_many
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings, UnknownDevice
from cost_engine.latency.worker import MeasurementError

__all__ = [
    "PROTOCOL_VERSION",
    "Calibration",
    "LatencyBudgetResult",
    "LatencyResult",
    "LatencySettings",
    "MeasurementError",
    "MemoryCache",
    "Protocol",
    "Residual",
    "UnknownDevice",
    "available_devices",
    "calibrate",
    "filter_by_latency",
    "fingerprint",
    "fit_residual",
    "latency_key",
    "measure",
    "measure_many",
    "predict",
    "predict_many",
]
