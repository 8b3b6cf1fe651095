# ruff: noqa
from costoracle.v1 import spec_pb2 as _spec_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT16: _ClassVar[DType]
    DTYPE_BFLOAT16: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]

class LatencyMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LATENCY_MODE_UNSPECIFIED: _ClassVar[LatencyMode]
    LATENCY_MODE_NONE: _ClassVar[LatencyMode]
    LATENCY_MODE_MEASURE: _ClassVar[LatencyMode]
    LATENCY_MODE_PREDICT: _ClassVar[LatencyMode]
    LATENCY_MODE_AUTO: _ClassVar[LatencyMode]

class LatencyMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LATENCY_METHOD_UNSPECIFIED: _ClassVar[LatencyMethod]
    LATENCY_METHOD_BLOCK_TABLE: _ClassVar[LatencyMethod]
    LATENCY_METHOD_ROOFLINE: _ClassVar[LatencyMethod]
    LATENCY_METHOD_FLOPS: _ClassVar[LatencyMethod]
    LATENCY_METHOD_KERNEL: _ClassVar[LatencyMethod]

class MemoryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_FORMAT_UNSPECIFIED: _ClassVar[MemoryFormat]
    MEMORY_FORMAT_CONTIGUOUS: _ClassVar[MemoryFormat]
    MEMORY_FORMAT_CHANNELS_LAST: _ClassVar[MemoryFormat]

class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_UNSPECIFIED: _ClassVar[Source]
    SOURCE_ANALYTIC: _ClassVar[Source]
    SOURCE_MEASURED: _ClassVar[Source]
    SOURCE_PREDICTED: _ClassVar[Source]

class Detail(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DETAIL_UNSPECIFIED: _ClassVar[Detail]
    DETAIL_FULL: _ClassVar[Detail]
    DETAIL_TOTALS: _ClassVar[Detail]
    DETAIL_SCALARS: _ClassVar[Detail]

class CostField(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COST_FIELD_UNSPECIFIED: _ClassVar[CostField]
    COST_FIELD_MACS: _ClassVar[CostField]
    COST_FIELD_FLOPS: _ClassVar[CostField]
    COST_FIELD_PARAMS: _ClassVar[CostField]
    COST_FIELD_MEMORY_ACCESS_BYTES: _ClassVar[CostField]
    COST_FIELD_PEAK_ACTIVATION_BYTES: _ClassVar[CostField]
    COST_FIELD_LATENCY_MS: _ClassVar[CostField]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT16: DType
DTYPE_BFLOAT16: DType
DTYPE_FLOAT64: DType
LATENCY_MODE_UNSPECIFIED: LatencyMode
LATENCY_MODE_NONE: LatencyMode
LATENCY_MODE_MEASURE: LatencyMode
LATENCY_MODE_PREDICT: LatencyMode
LATENCY_MODE_AUTO: LatencyMode
LATENCY_METHOD_UNSPECIFIED: LatencyMethod
LATENCY_METHOD_BLOCK_TABLE: LatencyMethod
LATENCY_METHOD_ROOFLINE: LatencyMethod
LATENCY_METHOD_FLOPS: LatencyMethod
LATENCY_METHOD_KERNEL: LatencyMethod
MEMORY_FORMAT_UNSPECIFIED: MemoryFormat
MEMORY_FORMAT_CONTIGUOUS: MemoryFormat
MEMORY_FORMAT_CHANNELS_LAST: MemoryFormat
SOURCE_UNSPECIFIED: Source
SOURCE_ANALYTIC: Source
SOURCE_MEASURED: Source
SOURCE_PREDICTED: Source
DETAIL_UNSPECIFIED: Detail
DETAIL_FULL: Detail
DETAIL_TOTALS: Detail
DETAIL_SCALARS: Detail
COST_FIELD_UNSPECIFIED: CostField
COST_FIELD_MACS: CostField
COST_FIELD_FLOPS: CostField
COST_FIELD_PARAMS: CostField
COST_FIELD_MEMORY_ACCESS_BYTES: CostField
COST_FIELD_PEAK_ACTIVATION_BYTES: CostField
COST_FIELD_LATENCY_MS: CostField

class Context(_message.Message):
    __slots__ = ("batch_size", "resolution", "dtype", "device", "latency", "threads", "memory_format", "compile", "latency_method", "cudnn_benchmark", "cold_l2", "cuda_graphs", "never_measure")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    COMPILE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_METHOD_FIELD_NUMBER: _ClassVar[int]
    CUDNN_BENCHMARK_FIELD_NUMBER: _ClassVar[int]
    COLD_L2_FIELD_NUMBER: _ClassVar[int]
    CUDA_GRAPHS_FIELD_NUMBER: _ClassVar[int]
    NEVER_MEASURE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    resolution: int
    dtype: DType
    device: str
    latency: LatencyMode
    threads: int
    memory_format: MemoryFormat
    compile: bool
    latency_method: LatencyMethod
    cudnn_benchmark: bool
    cold_l2: bool
    cuda_graphs: bool
    never_measure: bool
    def __init__(self, batch_size: _Optional[int] = ..., resolution: _Optional[int] = ..., dtype: _Optional[_Union[DType, str]] = ..., device: _Optional[str] = ..., latency: _Optional[_Union[LatencyMode, str]] = ..., threads: _Optional[int] = ..., memory_format: _Optional[_Union[MemoryFormat, str]] = ..., compile: _Optional[bool] = ..., latency_method: _Optional[_Union[LatencyMethod, str]] = ..., cudnn_benchmark: _Optional[bool] = ..., cold_l2: _Optional[bool] = ..., cuda_graphs: _Optional[bool] = ..., never_measure: _Optional[bool] = ...) -> None: ...

class Counts(_message.Message):
    __slots__ = ("ops", "macs", "flops", "params", "memory_access_bytes")
    OPS_FIELD_NUMBER: _ClassVar[int]
    MACS_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ACCESS_BYTES_FIELD_NUMBER: _ClassVar[int]
    ops: int
    macs: int
    flops: int
    params: int
    memory_access_bytes: int
    def __init__(self, ops: _Optional[int] = ..., macs: _Optional[int] = ..., flops: _Optional[int] = ..., params: _Optional[int] = ..., memory_access_bytes: _Optional[int] = ...) -> None: ...

class ModuleCounts(_message.Message):
    __slots__ = ("module", "counts")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    module: str
    counts: Counts
    def __init__(self, module: _Optional[str] = ..., counts: _Optional[_Union[Counts, _Mapping]] = ...) -> None: ...

class ToolView(_message.Message):
    __slots__ = ("counts", "exact", "reason")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.ScalarMap[str, int]
    exact: bool
    reason: str
    def __init__(self, counts: _Optional[_Mapping[str, int]] = ..., exact: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Latency(_message.Message):
    __slots__ = ("median_ms", "p10_ms", "p90_ms", "cv", "runs", "source", "method", "uncertainty_ms", "fingerprint", "protocol_version", "sessions", "spread_across_sessions", "session_medians_ms", "device", "threads", "cached", "key", "canary_drift", "page_faults_per_call", "noisy", "ci_low_ms", "ci_high_ms", "noisy_rel_ci", "ratio", "reference", "anchor_ms", "anchor_sessions", "raw_median_ms", "raw_p10_ms", "raw_p90_ms", "raw_session_medians_ms", "raw_spread_across_sessions", "remeasured", "interval_level", "measured_for_prediction")
    class FingerprintEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    P10_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    CV_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_MS_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SPREAD_ACROSS_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_MEDIANS_MS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CANARY_DRIFT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FAULTS_PER_CALL_FIELD_NUMBER: _ClassVar[int]
    NOISY_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_MS_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_MS_FIELD_NUMBER: _ClassVar[int]
    NOISY_REL_CI_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_MS_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    RAW_MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    RAW_P10_MS_FIELD_NUMBER: _ClassVar[int]
    RAW_P90_MS_FIELD_NUMBER: _ClassVar[int]
    RAW_SESSION_MEDIANS_MS_FIELD_NUMBER: _ClassVar[int]
    RAW_SPREAD_ACROSS_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    REMEASURED_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MEASURED_FOR_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    source: Source
    method: str
    uncertainty_ms: float
    fingerprint: _containers.ScalarMap[str, str]
    protocol_version: str
    sessions: int
    spread_across_sessions: float
    session_medians_ms: _containers.RepeatedScalarFieldContainer[float]
    device: str
    threads: int
    cached: bool
    key: str
    canary_drift: float
    page_faults_per_call: float
    noisy: bool
    ci_low_ms: float
    ci_high_ms: float
    noisy_rel_ci: float
    ratio: float
    reference: str
    anchor_ms: float
    anchor_sessions: int
    raw_median_ms: float
    raw_p10_ms: float
    raw_p90_ms: float
    raw_session_medians_ms: _containers.RepeatedScalarFieldContainer[float]
    raw_spread_across_sessions: float
    remeasured: int
    interval_level: float
    measured_for_prediction: int
    def __init__(self, median_ms: _Optional[float] = ..., p10_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., cv: _Optional[float] = ..., runs: _Optional[int] = ..., source: _Optional[_Union[Source, str]] = ..., method: _Optional[str] = ..., uncertainty_ms: _Optional[float] = ..., fingerprint: _Optional[_Mapping[str, str]] = ..., protocol_version: _Optional[str] = ..., sessions: _Optional[int] = ..., spread_across_sessions: _Optional[float] = ..., session_medians_ms: _Optional[_Iterable[float]] = ..., device: _Optional[str] = ..., threads: _Optional[int] = ..., cached: _Optional[bool] = ..., key: _Optional[str] = ..., canary_drift: _Optional[float] = ..., page_faults_per_call: _Optional[float] = ..., noisy: _Optional[bool] = ..., ci_low_ms: _Optional[float] = ..., ci_high_ms: _Optional[float] = ..., noisy_rel_ci: _Optional[float] = ..., ratio: _Optional[float] = ..., reference: _Optional[str] = ..., anchor_ms: _Optional[float] = ..., anchor_sessions: _Optional[int] = ..., raw_median_ms: _Optional[float] = ..., raw_p10_ms: _Optional[float] = ..., raw_p90_ms: _Optional[float] = ..., raw_session_medians_ms: _Optional[_Iterable[float]] = ..., raw_spread_across_sessions: _Optional[float] = ..., remeasured: _Optional[int] = ..., interval_level: _Optional[float] = ..., measured_for_prediction: _Optional[int] = ...) -> None: ...

class CostReport(_message.Message):
    __slots__ = ("candidate", "batch_size", "input_shape", "output_shape", "dtype", "params", "buffers", "macs", "flops", "memory_access_elements", "memory_access_bytes", "memory_access_bytes_fused", "peak_activation_bytes", "activations", "arithmetic_intensity", "op_count", "unknown_ops", "by_op_type", "by_module", "views", "cost_model_version", "cache_hit", "cache_key", "sources", "latency", "detail", "complete")
    class UnknownOpsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByOpTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Counts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Counts, _Mapping]] = ...) -> None: ...
    class ViewsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ToolView
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ToolView, _Mapping]] = ...) -> None: ...
    class SourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Source
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Source, str]] = ...) -> None: ...
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    BUFFERS_FIELD_NUMBER: _ClassVar[int]
    MACS_FIELD_NUMBER: _ClassVar[int]
    FLOPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ACCESS_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ACCESS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ACCESS_BYTES_FUSED_FIELD_NUMBER: _ClassVar[int]
    PEAK_ACTIVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    ARITHMETIC_INTENSITY_FIELD_NUMBER: _ClassVar[int]
    OP_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_OPS_FIELD_NUMBER: _ClassVar[int]
    BY_OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    BY_MODULE_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    COST_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    batch_size: int
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    params: int
    buffers: int
    macs: int
    flops: int
    memory_access_elements: int
    memory_access_bytes: int
    memory_access_bytes_fused: int
    peak_activation_bytes: int
    activations: int
    arithmetic_intensity: float
    op_count: int
    unknown_ops: _containers.ScalarMap[str, int]
    by_op_type: _containers.MessageMap[str, Counts]
    by_module: _containers.RepeatedCompositeFieldContainer[ModuleCounts]
    views: _containers.MessageMap[str, ToolView]
    cost_model_version: str
    cache_hit: bool
    cache_key: str
    sources: _containers.ScalarMap[str, Source]
    latency: Latency
    detail: Detail
    complete: bool
    def __init__(self, candidate: _Optional[str] = ..., batch_size: _Optional[int] = ..., input_shape: _Optional[_Iterable[int]] = ..., output_shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., params: _Optional[int] = ..., buffers: _Optional[int] = ..., macs: _Optional[int] = ..., flops: _Optional[int] = ..., memory_access_elements: _Optional[int] = ..., memory_access_bytes: _Optional[int] = ..., memory_access_bytes_fused: _Optional[int] = ..., peak_activation_bytes: _Optional[int] = ..., activations: _Optional[int] = ..., arithmetic_intensity: _Optional[float] = ..., op_count: _Optional[int] = ..., unknown_ops: _Optional[_Mapping[str, int]] = ..., by_op_type: _Optional[_Mapping[str, Counts]] = ..., by_module: _Optional[_Iterable[_Union[ModuleCounts, _Mapping]]] = ..., views: _Optional[_Mapping[str, ToolView]] = ..., cost_model_version: _Optional[str] = ..., cache_hit: _Optional[bool] = ..., cache_key: _Optional[str] = ..., sources: _Optional[_Mapping[str, Source]] = ..., latency: _Optional[_Union[Latency, _Mapping]] = ..., detail: _Optional[_Union[Detail, str]] = ..., complete: _Optional[bool] = ...) -> None: ...

class CostResult(_message.Message):
    __slots__ = ("report", "error")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    report: CostReport
    error: _status_pb2.Status
    def __init__(self, report: _Optional[_Union[CostReport, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class GetCostRequest(_message.Message):
    __slots__ = ("candidate", "context", "detail")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    candidate: _spec_pb2.Candidate
    context: Context
    detail: Detail
    def __init__(self, candidate: _Optional[_Union[_spec_pb2.Candidate, _Mapping]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., detail: _Optional[_Union[Detail, str]] = ...) -> None: ...

class GetCostResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: CostReport
    def __init__(self, report: _Optional[_Union[CostReport, _Mapping]] = ...) -> None: ...

class GetCostBatchRequest(_message.Message):
    __slots__ = ("candidates", "context", "detail")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_spec_pb2.Candidate]
    context: Context
    detail: Detail
    def __init__(self, candidates: _Optional[_Iterable[_Union[_spec_pb2.Candidate, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., detail: _Optional[_Union[Detail, str]] = ...) -> None: ...

class GetCostBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CostResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CostResult, _Mapping]]] = ...) -> None: ...

class StreamCostBatchRequest(_message.Message):
    __slots__ = ("candidates", "context", "detail", "chunk_size")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_spec_pb2.Candidate]
    context: Context
    detail: Detail
    chunk_size: int
    def __init__(self, candidates: _Optional[_Iterable[_Union[_spec_pb2.Candidate, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., detail: _Optional[_Union[Detail, str]] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class StreamCostBatchResponse(_message.Message):
    __slots__ = ("offset", "results", "total")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    offset: int
    results: _containers.RepeatedCompositeFieldContainer[CostResult]
    total: int
    def __init__(self, offset: _Optional[int] = ..., results: _Optional[_Iterable[_Union[CostResult, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("max_macs", "max_flops", "max_params", "max_memory_access_bytes", "max_peak_activation_bytes", "max_latency_ms", "measure_all")
    MAX_MACS_FIELD_NUMBER: _ClassVar[int]
    MAX_FLOPS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_ACCESS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PEAK_ACTIVATION_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_ALL_FIELD_NUMBER: _ClassVar[int]
    max_macs: int
    max_flops: int
    max_params: int
    max_memory_access_bytes: int
    max_peak_activation_bytes: int
    max_latency_ms: float
    measure_all: bool
    def __init__(self, max_macs: _Optional[int] = ..., max_flops: _Optional[int] = ..., max_params: _Optional[int] = ..., max_memory_access_bytes: _Optional[int] = ..., max_peak_activation_bytes: _Optional[int] = ..., max_latency_ms: _Optional[float] = ..., measure_all: _Optional[bool] = ...) -> None: ...

class Constraint(_message.Message):
    __slots__ = ("name", "value", "actual", "limit", "ratio")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    actual: float
    limit: float
    ratio: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., actual: _Optional[float] = ..., limit: _Optional[float] = ..., ratio: _Optional[float] = ...) -> None: ...

class FilterResult(_message.Message):
    __slots__ = ("index", "feasible", "constraints", "violated", "error", "report", "pareto", "decided_by")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    VIOLATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    PARETO_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    index: int
    feasible: bool
    constraints: _containers.RepeatedCompositeFieldContainer[Constraint]
    violated: _containers.RepeatedScalarFieldContainer[str]
    error: _status_pb2.Status
    report: CostReport
    pareto: bool
    decided_by: str
    def __init__(self, index: _Optional[int] = ..., feasible: _Optional[bool] = ..., constraints: _Optional[_Iterable[_Union[Constraint, _Mapping]]] = ..., violated: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., report: _Optional[_Union[CostReport, _Mapping]] = ..., pareto: _Optional[bool] = ..., decided_by: _Optional[str] = ...) -> None: ...

class FilterRequest(_message.Message):
    __slots__ = ("candidates", "context", "budget", "pareto_fields", "include_reports", "detail")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PARETO_FIELDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REPORTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_spec_pb2.Candidate]
    context: Context
    budget: Budget
    pareto_fields: _containers.RepeatedScalarFieldContainer[CostField]
    include_reports: bool
    detail: Detail
    def __init__(self, candidates: _Optional[_Iterable[_Union[_spec_pb2.Candidate, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., pareto_fields: _Optional[_Iterable[_Union[CostField, str]]] = ..., include_reports: _Optional[bool] = ..., detail: _Optional[_Union[Detail, str]] = ...) -> None: ...

class FilterResponse(_message.Message):
    __slots__ = ("results", "feasible", "pareto_front", "measurements")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    PARETO_FRONT_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FilterResult]
    feasible: _containers.RepeatedScalarFieldContainer[int]
    pareto_front: _containers.RepeatedScalarFieldContainer[int]
    measurements: int
    def __init__(self, results: _Optional[_Iterable[_Union[FilterResult, _Mapping]]] = ..., feasible: _Optional[_Iterable[int]] = ..., pareto_front: _Optional[_Iterable[int]] = ..., measurements: _Optional[int] = ...) -> None: ...

class EfficientNetCompoundSpace(_message.Message):
    __slots__ = ("alpha", "beta", "gamma", "phi", "target", "tolerance")
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    PHI_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    alpha: _containers.RepeatedScalarFieldContainer[float]
    beta: _containers.RepeatedScalarFieldContainer[float]
    gamma: _containers.RepeatedScalarFieldContainer[float]
    phi: _containers.RepeatedScalarFieldContainer[float]
    target: float
    tolerance: float
    def __init__(self, alpha: _Optional[_Iterable[float]] = ..., beta: _Optional[_Iterable[float]] = ..., gamma: _Optional[_Iterable[float]] = ..., phi: _Optional[_Iterable[float]] = ..., target: _Optional[float] = ..., tolerance: _Optional[float] = ...) -> None: ...

class MultiplierSpace(_message.Message):
    __slots__ = ("family", "width", "depth", "resolution", "resolution_multiplier")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    family: str
    width: _containers.RepeatedScalarFieldContainer[float]
    depth: _containers.RepeatedScalarFieldContainer[float]
    resolution: _containers.RepeatedScalarFieldContainer[int]
    resolution_multiplier: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, family: _Optional[str] = ..., width: _Optional[_Iterable[float]] = ..., depth: _Optional[_Iterable[float]] = ..., resolution: _Optional[_Iterable[int]] = ..., resolution_multiplier: _Optional[_Iterable[float]] = ...) -> None: ...

class Depths(_message.Message):
    __slots__ = ("depths",)
    DEPTHS_FIELD_NUMBER: _ClassVar[int]
    depths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, depths: _Optional[_Iterable[int]] = ...) -> None: ...

class FasterNetSpace(_message.Message):
    __slots__ = ("n_div", "mlp_ratio", "depths", "embed_dim", "act", "resolution")
    N_DIV_FIELD_NUMBER: _ClassVar[int]
    MLP_RATIO_FIELD_NUMBER: _ClassVar[int]
    DEPTHS_FIELD_NUMBER: _ClassVar[int]
    EMBED_DIM_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    n_div: _containers.RepeatedScalarFieldContainer[int]
    mlp_ratio: _containers.RepeatedScalarFieldContainer[float]
    depths: _containers.RepeatedCompositeFieldContainer[Depths]
    embed_dim: _containers.RepeatedScalarFieldContainer[int]
    act: _containers.RepeatedScalarFieldContainer[str]
    resolution: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, n_div: _Optional[_Iterable[int]] = ..., mlp_ratio: _Optional[_Iterable[float]] = ..., depths: _Optional[_Iterable[_Union[Depths, _Mapping]]] = ..., embed_dim: _Optional[_Iterable[int]] = ..., act: _Optional[_Iterable[str]] = ..., resolution: _Optional[_Iterable[int]] = ...) -> None: ...

class SweepRequest(_message.Message):
    __slots__ = ("efficientnet_compound", "multipliers", "fasternet", "context", "budget", "pareto_fields", "include_reports", "detail", "include_specs", "chunk_size")
    EFFICIENTNET_COMPOUND_FIELD_NUMBER: _ClassVar[int]
    MULTIPLIERS_FIELD_NUMBER: _ClassVar[int]
    FASTERNET_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    PARETO_FIELDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REPORTS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SPECS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    efficientnet_compound: EfficientNetCompoundSpace
    multipliers: MultiplierSpace
    fasternet: FasterNetSpace
    context: Context
    budget: Budget
    pareto_fields: _containers.RepeatedScalarFieldContainer[CostField]
    include_reports: bool
    detail: Detail
    include_specs: bool
    chunk_size: int
    def __init__(self, efficientnet_compound: _Optional[_Union[EfficientNetCompoundSpace, _Mapping]] = ..., multipliers: _Optional[_Union[MultiplierSpace, _Mapping]] = ..., fasternet: _Optional[_Union[FasterNetSpace, _Mapping]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., pareto_fields: _Optional[_Iterable[_Union[CostField, str]]] = ..., include_reports: _Optional[bool] = ..., detail: _Optional[_Union[Detail, str]] = ..., include_specs: _Optional[bool] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class SweepPoint(_message.Message):
    __slots__ = ("index", "params", "spec", "result", "label", "duplicate_of")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    index: int
    params: _containers.ScalarMap[str, float]
    spec: _spec_pb2.NetworkSpec
    result: FilterResult
    label: str
    duplicate_of: int
    def __init__(self, index: _Optional[int] = ..., params: _Optional[_Mapping[str, float]] = ..., spec: _Optional[_Union[_spec_pb2.NetworkSpec, _Mapping]] = ..., result: _Optional[_Union[FilterResult, _Mapping]] = ..., label: _Optional[str] = ..., duplicate_of: _Optional[int] = ...) -> None: ...

class SweepResponse(_message.Message):
    __slots__ = ("total", "points", "done", "feasible", "pareto_front", "measurements", "distinct")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_FIELD_NUMBER: _ClassVar[int]
    PARETO_FRONT_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_FIELD_NUMBER: _ClassVar[int]
    total: int
    points: _containers.RepeatedCompositeFieldContainer[SweepPoint]
    done: bool
    feasible: _containers.RepeatedScalarFieldContainer[int]
    pareto_front: _containers.RepeatedScalarFieldContainer[int]
    measurements: int
    distinct: int
    def __init__(self, total: _Optional[int] = ..., points: _Optional[_Iterable[_Union[SweepPoint, _Mapping]]] = ..., done: _Optional[bool] = ..., feasible: _Optional[_Iterable[int]] = ..., pareto_front: _Optional[_Iterable[int]] = ..., measurements: _Optional[int] = ..., distinct: _Optional[int] = ...) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "fingerprint")
    class FingerprintEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    fingerprint: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., fingerprint: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_batch_size", "max_sweep_size", "max_message_bytes", "max_pending_measurements", "default_chunk_size")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SWEEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_sweep_size: int
    max_message_bytes: int
    max_pending_measurements: int
    default_chunk_size: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_sweep_size: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_pending_measurements: _Optional[int] = ..., default_chunk_size: _Optional[int] = ...) -> None: ...

class GetServerInfoResponse(_message.Message):
    __slots__ = ("server_version", "cost_model_version", "latency_protocol_version", "versions", "devices", "limits", "spec_kinds", "builtins", "sweep_families", "auth_required", "cache_backend", "queue", "activations", "activation_aliases")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ActivationAliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    COST_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SPEC_KINDS_FIELD_NUMBER: _ClassVar[int]
    BUILTINS_FIELD_NUMBER: _ClassVar[int]
    SWEEP_FAMILIES_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CACHE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_ALIASES_FIELD_NUMBER: _ClassVar[int]
    server_version: str
    cost_model_version: str
    latency_protocol_version: str
    versions: _containers.ScalarMap[str, str]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    limits: Limits
    spec_kinds: _containers.RepeatedScalarFieldContainer[str]
    builtins: _containers.RepeatedScalarFieldContainer[str]
    sweep_families: _containers.RepeatedScalarFieldContainer[str]
    auth_required: bool
    cache_backend: str
    queue: QueueStats
    activations: _containers.RepeatedScalarFieldContainer[str]
    activation_aliases: _containers.ScalarMap[str, str]
    def __init__(self, server_version: _Optional[str] = ..., cost_model_version: _Optional[str] = ..., latency_protocol_version: _Optional[str] = ..., versions: _Optional[_Mapping[str, str]] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., spec_kinds: _Optional[_Iterable[str]] = ..., builtins: _Optional[_Iterable[str]] = ..., sweep_families: _Optional[_Iterable[str]] = ..., auth_required: _Optional[bool] = ..., cache_backend: _Optional[str] = ..., queue: _Optional[_Union[QueueStats, _Mapping]] = ..., activations: _Optional[_Iterable[str]] = ..., activation_aliases: _Optional[_Mapping[str, str]] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("pending", "in_flight", "done", "coalesced", "dropped", "cache_hits", "failed", "max_pending", "devices", "worker_restarts", "measure_on")
    class DevicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: DeviceQueueStats
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[DeviceQueueStats, _Mapping]] = ...) -> None: ...
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    COALESCED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    WORKER_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MEASURE_ON_FIELD_NUMBER: _ClassVar[int]
    pending: int
    in_flight: int
    done: int
    coalesced: int
    dropped: int
    cache_hits: int
    failed: int
    max_pending: int
    devices: _containers.MessageMap[str, DeviceQueueStats]
    worker_restarts: int
    measure_on: str
    def __init__(self, pending: _Optional[int] = ..., in_flight: _Optional[int] = ..., done: _Optional[int] = ..., coalesced: _Optional[int] = ..., dropped: _Optional[int] = ..., cache_hits: _Optional[int] = ..., failed: _Optional[int] = ..., max_pending: _Optional[int] = ..., devices: _Optional[_Mapping[str, DeviceQueueStats]] = ..., worker_restarts: _Optional[int] = ..., measure_on: _Optional[str] = ...) -> None: ...

class DeviceQueueStats(_message.Message):
    __slots__ = ("pending", "in_flight", "busy_s", "done", "failed", "workers")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    BUSY_S_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    pending: int
    in_flight: int
    busy_s: float
    done: int
    failed: int
    workers: int
    def __init__(self, pending: _Optional[int] = ..., in_flight: _Optional[int] = ..., busy_s: _Optional[float] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...

class GetCacheStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCacheStatsResponse(_message.Message):
    __slots__ = ("backend", "entries", "entries_by_kind", "hits", "misses", "writes", "hit_rate", "counters", "queue")
    class EntriesByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_BY_KIND_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    backend: str
    entries: int
    entries_by_kind: _containers.ScalarMap[str, int]
    hits: int
    misses: int
    writes: int
    hit_rate: float
    counters: _containers.ScalarMap[str, int]
    queue: QueueStats
    def __init__(self, backend: _Optional[str] = ..., entries: _Optional[int] = ..., entries_by_kind: _Optional[_Mapping[str, int]] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., writes: _Optional[int] = ..., hit_rate: _Optional[float] = ..., counters: _Optional[_Mapping[str, int]] = ..., queue: _Optional[_Union[QueueStats, _Mapping]] = ...) -> None: ...

class CalibrateRequest(_message.Message):
    __slots__ = ("device", "dtype", "threads", "refresh")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    device: str
    dtype: DType
    threads: int
    refresh: bool
    def __init__(self, device: _Optional[str] = ..., dtype: _Optional[_Union[DType, str]] = ..., threads: _Optional[int] = ..., refresh: _Optional[bool] = ...) -> None: ...

class Calibration(_message.Message):
    __slots__ = ("device", "dtype", "threads", "peak_flops", "bandwidth_bytes_per_s", "overhead_s_per_op", "fingerprint", "protocol_version", "cached")
    class FingerprintEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    PEAK_FLOPS_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_S_PER_OP_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    device: str
    dtype: str
    threads: int
    peak_flops: float
    bandwidth_bytes_per_s: float
    overhead_s_per_op: float
    fingerprint: _containers.ScalarMap[str, str]
    protocol_version: str
    cached: bool
    def __init__(self, device: _Optional[str] = ..., dtype: _Optional[str] = ..., threads: _Optional[int] = ..., peak_flops: _Optional[float] = ..., bandwidth_bytes_per_s: _Optional[float] = ..., overhead_s_per_op: _Optional[float] = ..., fingerprint: _Optional[_Mapping[str, str]] = ..., protocol_version: _Optional[str] = ..., cached: _Optional[bool] = ...) -> None: ...

class CalibrateResponse(_message.Message):
    __slots__ = ("calibration",)
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    calibration: Calibration
    def __init__(self, calibration: _Optional[_Union[Calibration, _Mapping]] = ...) -> None: ...

class FitLatencyModelRequest(_message.Message):
    __slots__ = ("candidates", "context", "max_units", "networks", "budget_minutes", "adaptive", "seed")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_UNITS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[_spec_pb2.Candidate]
    context: Context
    max_units: int
    networks: int
    budget_minutes: float
    adaptive: float
    seed: int
    def __init__(self, candidates: _Optional[_Iterable[_Union[_spec_pb2.Candidate, _Mapping]]] = ..., context: _Optional[_Union[Context, _Mapping]] = ..., max_units: _Optional[int] = ..., networks: _Optional[int] = ..., budget_minutes: _Optional[float] = ..., adaptive: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class KernelModelRound(_message.Message):
    __slots__ = ("validation_units", "resampled", "median_abs_log_error", "max_abs_log_error", "worst_types")
    VALIDATION_UNITS_FIELD_NUMBER: _ClassVar[int]
    RESAMPLED_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_ABS_LOG_ERROR_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_LOG_ERROR_FIELD_NUMBER: _ClassVar[int]
    WORST_TYPES_FIELD_NUMBER: _ClassVar[int]
    validation_units: int
    resampled: int
    median_abs_log_error: float
    max_abs_log_error: float
    worst_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, validation_units: _Optional[int] = ..., resampled: _Optional[int] = ..., median_abs_log_error: _Optional[float] = ..., max_abs_log_error: _Optional[float] = ..., worst_types: _Optional[_Iterable[str]] = ...) -> None: ...

class KernelModel(_message.Message):
    __slots__ = ("key", "generation", "units", "networks", "unit_measurements", "network_measurements", "profiling_s", "distinct_units_in_space", "interval_90_rel", "types", "stopped_by_budget", "fingerprint", "rounds", "unit_counts")
    class FingerprintEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class UnitCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    UNIT_MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    PROFILING_S_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_UNITS_IN_SPACE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_90_REL_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    STOPPED_BY_BUDGET_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    UNIT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    generation: int
    units: int
    networks: int
    unit_measurements: int
    network_measurements: int
    profiling_s: float
    distinct_units_in_space: int
    interval_90_rel: float
    types: _containers.RepeatedScalarFieldContainer[str]
    stopped_by_budget: bool
    fingerprint: _containers.ScalarMap[str, str]
    rounds: _containers.RepeatedCompositeFieldContainer[KernelModelRound]
    unit_counts: _containers.ScalarMap[str, int]
    def __init__(self, key: _Optional[str] = ..., generation: _Optional[int] = ..., units: _Optional[int] = ..., networks: _Optional[int] = ..., unit_measurements: _Optional[int] = ..., network_measurements: _Optional[int] = ..., profiling_s: _Optional[float] = ..., distinct_units_in_space: _Optional[int] = ..., interval_90_rel: _Optional[float] = ..., types: _Optional[_Iterable[str]] = ..., stopped_by_budget: _Optional[bool] = ..., fingerprint: _Optional[_Mapping[str, str]] = ..., rounds: _Optional[_Iterable[_Union[KernelModelRound, _Mapping]]] = ..., unit_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class FitLatencyModelResponse(_message.Message):
    __slots__ = ("phase", "done", "total", "elapsed_s", "model")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    phase: str
    done: int
    total: int
    elapsed_s: float
    model: KernelModel
    def __init__(self, phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., elapsed_s: _Optional[float] = ..., model: _Optional[_Union[KernelModel, _Mapping]] = ...) -> None: ...
