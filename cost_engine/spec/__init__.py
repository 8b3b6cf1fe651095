"""Candidate specs as plain frozen data; imports neither torch nor grpc."""

from cost_engine.spec.base import SPEC_KINDS, FieldError, Spec, SpecError, from_dict, to_dict, validate
from cost_engine.spec.blocks import (
    ConvNeXtBlockSpec,
    ConvSpec,
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    LinearSpec,
    MBConvSpec,
    NormSpec,
    PoolSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    ShuffleV2UnitSpec,
    TransformerBlockSpec,
)
from cost_engine.spec.network import NetworkSpec
from cost_engine.spec.tokens import PatchEmbedSpec, TokenPoolSpec, TokensSpec

__all__ = [
    "SPEC_KINDS",
    "ConvNeXtBlockSpec",
    "ConvSpec",
    "DepthwiseSeparableSpec",
    "FasterNetBlockSpec",
    "FieldError",
    "FusedMBConvSpec",
    "LinearSpec",
    "MBConvSpec",
    "NetworkSpec",
    "NormSpec",
    "PatchEmbedSpec",
    "PoolSpec",
    "RegNetBlockSpec",
    "ResNetBasicSpec",
    "ResNetBottleneckSpec",
    "ShuffleV2UnitSpec",
    "Spec",
    "SpecError",
    "TokenPoolSpec",
    "TokensSpec",
    "TransformerBlockSpec",
    "from_dict",
    "to_dict",
    "validate",
]
