# ruff: noqa
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConvSpec(_message.Message):
    __slots__ = ("out_channels", "kernel_size", "stride", "groups", "dilation", "bias", "norm", "act")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    DILATION_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    NORM_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    dilation: int
    bias: bool
    norm: str
    act: str
    def __init__(self, out_channels: _Optional[int] = ..., kernel_size: _Optional[int] = ..., stride: _Optional[int] = ..., groups: _Optional[int] = ..., dilation: _Optional[int] = ..., bias: _Optional[bool] = ..., norm: _Optional[str] = ..., act: _Optional[str] = ...) -> None: ...

class DepthwiseSeparableSpec(_message.Message):
    __slots__ = ("out_channels", "kernel_size", "stride", "se_ratio", "act", "pw_act", "skip")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    SE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    PW_ACT_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    kernel_size: int
    stride: int
    se_ratio: float
    act: str
    pw_act: bool
    skip: bool
    def __init__(self, out_channels: _Optional[int] = ..., kernel_size: _Optional[int] = ..., stride: _Optional[int] = ..., se_ratio: _Optional[float] = ..., act: _Optional[str] = ..., pw_act: _Optional[bool] = ..., skip: _Optional[bool] = ...) -> None: ...

class MBConvSpec(_message.Message):
    __slots__ = ("out_channels", "expand_ratio", "kernel_size", "stride", "se_ratio", "act", "skip")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    EXPAND_RATIO_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    SE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    expand_ratio: float
    kernel_size: int
    stride: int
    se_ratio: float
    act: str
    skip: bool
    def __init__(self, out_channels: _Optional[int] = ..., expand_ratio: _Optional[float] = ..., kernel_size: _Optional[int] = ..., stride: _Optional[int] = ..., se_ratio: _Optional[float] = ..., act: _Optional[str] = ..., skip: _Optional[bool] = ...) -> None: ...

class FusedMBConvSpec(_message.Message):
    __slots__ = ("out_channels", "expand_ratio", "kernel_size", "stride", "se_ratio", "act", "skip")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    EXPAND_RATIO_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    SE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    expand_ratio: float
    kernel_size: int
    stride: int
    se_ratio: float
    act: str
    skip: bool
    def __init__(self, out_channels: _Optional[int] = ..., expand_ratio: _Optional[float] = ..., kernel_size: _Optional[int] = ..., stride: _Optional[int] = ..., se_ratio: _Optional[float] = ..., act: _Optional[str] = ..., skip: _Optional[bool] = ...) -> None: ...

class FasterNetBlockSpec(_message.Message):
    __slots__ = ("n_div", "mlp_ratio", "kernel_size", "act", "forward")
    N_DIV_FIELD_NUMBER: _ClassVar[int]
    MLP_RATIO_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    FORWARD_FIELD_NUMBER: _ClassVar[int]
    n_div: int
    mlp_ratio: float
    kernel_size: int
    act: str
    forward: str
    def __init__(self, n_div: _Optional[int] = ..., mlp_ratio: _Optional[float] = ..., kernel_size: _Optional[int] = ..., act: _Optional[str] = ..., forward: _Optional[str] = ...) -> None: ...

class ResNetBasicSpec(_message.Message):
    __slots__ = ("out_channels", "stride")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    stride: int
    def __init__(self, out_channels: _Optional[int] = ..., stride: _Optional[int] = ...) -> None: ...

class ResNetBottleneckSpec(_message.Message):
    __slots__ = ("width", "stride", "groups", "expansion")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    EXPANSION_FIELD_NUMBER: _ClassVar[int]
    width: int
    stride: int
    groups: int
    expansion: int
    def __init__(self, width: _Optional[int] = ..., stride: _Optional[int] = ..., groups: _Optional[int] = ..., expansion: _Optional[int] = ...) -> None: ...

class ShuffleV2UnitSpec(_message.Message):
    __slots__ = ("out_channels", "stride", "kernel_size")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    stride: int
    kernel_size: int
    def __init__(self, out_channels: _Optional[int] = ..., stride: _Optional[int] = ..., kernel_size: _Optional[int] = ...) -> None: ...

class RegNetBlockSpec(_message.Message):
    __slots__ = ("out_channels", "stride", "group_width", "bottleneck_ratio", "se_ratio")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    GROUP_WIDTH_FIELD_NUMBER: _ClassVar[int]
    BOTTLENECK_RATIO_FIELD_NUMBER: _ClassVar[int]
    SE_RATIO_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    stride: int
    group_width: int
    bottleneck_ratio: float
    se_ratio: float
    def __init__(self, out_channels: _Optional[int] = ..., stride: _Optional[int] = ..., group_width: _Optional[int] = ..., bottleneck_ratio: _Optional[float] = ..., se_ratio: _Optional[float] = ...) -> None: ...

class ConvNeXtBlockSpec(_message.Message):
    __slots__ = ("kernel_size", "mlp_ratio", "layer_scale")
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MLP_RATIO_FIELD_NUMBER: _ClassVar[int]
    LAYER_SCALE_FIELD_NUMBER: _ClassVar[int]
    kernel_size: int
    mlp_ratio: float
    layer_scale: bool
    def __init__(self, kernel_size: _Optional[int] = ..., mlp_ratio: _Optional[float] = ..., layer_scale: _Optional[bool] = ...) -> None: ...

class TransformerBlockSpec(_message.Message):
    __slots__ = ("heads", "mlp_ratio", "act", "qkv_bias")
    HEADS_FIELD_NUMBER: _ClassVar[int]
    MLP_RATIO_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    QKV_BIAS_FIELD_NUMBER: _ClassVar[int]
    heads: int
    mlp_ratio: float
    act: str
    qkv_bias: bool
    def __init__(self, heads: _Optional[int] = ..., mlp_ratio: _Optional[float] = ..., act: _Optional[str] = ..., qkv_bias: _Optional[bool] = ...) -> None: ...

class PoolSpec(_message.Message):
    __slots__ = ("mode", "kernel_size", "stride", "padding", "flatten")
    MODE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    PADDING_FIELD_NUMBER: _ClassVar[int]
    FLATTEN_FIELD_NUMBER: _ClassVar[int]
    mode: str
    kernel_size: int
    stride: int
    padding: int
    flatten: bool
    def __init__(self, mode: _Optional[str] = ..., kernel_size: _Optional[int] = ..., stride: _Optional[int] = ..., padding: _Optional[int] = ..., flatten: _Optional[bool] = ...) -> None: ...

class NormSpec(_message.Message):
    __slots__ = ("norm",)
    NORM_FIELD_NUMBER: _ClassVar[int]
    norm: str
    def __init__(self, norm: _Optional[str] = ...) -> None: ...

class LinearSpec(_message.Message):
    __slots__ = ("out_features", "bias", "act")
    OUT_FEATURES_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    ACT_FIELD_NUMBER: _ClassVar[int]
    out_features: int
    bias: bool
    act: str
    def __init__(self, out_features: _Optional[int] = ..., bias: _Optional[bool] = ..., act: _Optional[str] = ...) -> None: ...

class PatchEmbedSpec(_message.Message):
    __slots__ = ("out_channels", "patch_size", "bias")
    OUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    out_channels: int
    patch_size: int
    bias: bool
    def __init__(self, out_channels: _Optional[int] = ..., patch_size: _Optional[int] = ..., bias: _Optional[bool] = ...) -> None: ...

class TokensSpec(_message.Message):
    __slots__ = ("class_token", "pos_embed")
    CLASS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POS_EMBED_FIELD_NUMBER: _ClassVar[int]
    class_token: bool
    pos_embed: bool
    def __init__(self, class_token: _Optional[bool] = ..., pos_embed: _Optional[bool] = ...) -> None: ...

class TokenPoolSpec(_message.Message):
    __slots__ = ("mode",)
    MODE_FIELD_NUMBER: _ClassVar[int]
    mode: str
    def __init__(self, mode: _Optional[str] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("conv", "dwsep", "mbconv", "fused_mbconv", "fasternet", "resnet_basic", "resnet_bottleneck", "shufflenet_v2", "regnet", "convnext", "transformer", "pool", "norm", "linear", "tokens", "token_pool", "patch_embed")
    CONV_FIELD_NUMBER: _ClassVar[int]
    DWSEP_FIELD_NUMBER: _ClassVar[int]
    MBCONV_FIELD_NUMBER: _ClassVar[int]
    FUSED_MBCONV_FIELD_NUMBER: _ClassVar[int]
    FASTERNET_FIELD_NUMBER: _ClassVar[int]
    RESNET_BASIC_FIELD_NUMBER: _ClassVar[int]
    RESNET_BOTTLENECK_FIELD_NUMBER: _ClassVar[int]
    SHUFFLENET_V2_FIELD_NUMBER: _ClassVar[int]
    REGNET_FIELD_NUMBER: _ClassVar[int]
    CONVNEXT_FIELD_NUMBER: _ClassVar[int]
    TRANSFORMER_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    NORM_FIELD_NUMBER: _ClassVar[int]
    LINEAR_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_POOL_FIELD_NUMBER: _ClassVar[int]
    PATCH_EMBED_FIELD_NUMBER: _ClassVar[int]
    conv: ConvSpec
    dwsep: DepthwiseSeparableSpec
    mbconv: MBConvSpec
    fused_mbconv: FusedMBConvSpec
    fasternet: FasterNetBlockSpec
    resnet_basic: ResNetBasicSpec
    resnet_bottleneck: ResNetBottleneckSpec
    shufflenet_v2: ShuffleV2UnitSpec
    regnet: RegNetBlockSpec
    convnext: ConvNeXtBlockSpec
    transformer: TransformerBlockSpec
    pool: PoolSpec
    norm: NormSpec
    linear: LinearSpec
    tokens: TokensSpec
    token_pool: TokenPoolSpec
    patch_embed: PatchEmbedSpec
    def __init__(self, conv: _Optional[_Union[ConvSpec, _Mapping]] = ..., dwsep: _Optional[_Union[DepthwiseSeparableSpec, _Mapping]] = ..., mbconv: _Optional[_Union[MBConvSpec, _Mapping]] = ..., fused_mbconv: _Optional[_Union[FusedMBConvSpec, _Mapping]] = ..., fasternet: _Optional[_Union[FasterNetBlockSpec, _Mapping]] = ..., resnet_basic: _Optional[_Union[ResNetBasicSpec, _Mapping]] = ..., resnet_bottleneck: _Optional[_Union[ResNetBottleneckSpec, _Mapping]] = ..., shufflenet_v2: _Optional[_Union[ShuffleV2UnitSpec, _Mapping]] = ..., regnet: _Optional[_Union[RegNetBlockSpec, _Mapping]] = ..., convnext: _Optional[_Union[ConvNeXtBlockSpec, _Mapping]] = ..., transformer: _Optional[_Union[TransformerBlockSpec, _Mapping]] = ..., pool: _Optional[_Union[PoolSpec, _Mapping]] = ..., norm: _Optional[_Union[NormSpec, _Mapping]] = ..., linear: _Optional[_Union[LinearSpec, _Mapping]] = ..., tokens: _Optional[_Union[TokensSpec, _Mapping]] = ..., token_pool: _Optional[_Union[TokenPoolSpec, _Mapping]] = ..., patch_embed: _Optional[_Union[PatchEmbedSpec, _Mapping]] = ...) -> None: ...

class Stage(_message.Message):
    __slots__ = ("blocks",)
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[Block]
    def __init__(self, blocks: _Optional[_Iterable[_Union[Block, _Mapping]]] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("stem", "stages", "head", "in_channels", "resolution")
    STEM_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    IN_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    stem: _containers.RepeatedCompositeFieldContainer[Block]
    stages: _containers.RepeatedCompositeFieldContainer[Stage]
    head: _containers.RepeatedCompositeFieldContainer[Block]
    in_channels: int
    resolution: int
    def __init__(self, stem: _Optional[_Iterable[_Union[Block, _Mapping]]] = ..., stages: _Optional[_Iterable[_Union[Stage, _Mapping]]] = ..., head: _Optional[_Iterable[_Union[Block, _Mapping]]] = ..., in_channels: _Optional[int] = ..., resolution: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("builtin", "network", "block", "in_channels")
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    IN_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    builtin: str
    network: NetworkSpec
    block: Block
    in_channels: int
    def __init__(self, builtin: _Optional[str] = ..., network: _Optional[_Union[NetworkSpec, _Mapping]] = ..., block: _Optional[_Union[Block, _Mapping]] = ..., in_channels: _Optional[int] = ...) -> None: ...
