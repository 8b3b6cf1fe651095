"""Vision Transformer (Dosovitskiy et al.; timm ``VisionTransformer`` layout) from patch size,
width, depth and heads; the DeiT/timm tiny, small and base presets at 224 px, patch 16.

Stem: patchify conv (kernel = stride = patch, bias; its own spec kind), tokens (flatten + transpose, class token,
position embedding). One stage of pre-norm encoder blocks. Head: LayerNorm, the class token
(or the token mean without one), Linear. Every attention matmul is counted.
"""

from __future__ import annotations

from cost_engine.families.registry import builtin
from cost_engine.spec.base import FieldError, SpecError, validate
from cost_engine.spec.blocks import LinearSpec, NormSpec, TransformerBlockSpec
from cost_engine.spec.network import NetworkSpec
from cost_engine.spec.tokens import PatchEmbedSpec, TokenPoolSpec, TokensSpec


def vit(patch_size: int, dim: int, depth: int, heads: int, *, mlp_ratio: float = 4.0, class_token: bool = True,
        qkv_bias: bool = True, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """A ViT network spec; raises :class:`SpecError` naming every bad argument."""
    errors = []
    if not isinstance(depth, int) or depth < 1:
        errors.append(FieldError("depth", f"must be a positive integer, got {depth!r}"))
    if isinstance(dim, int) and isinstance(heads, int) and heads > 0 and dim % heads:
        errors.append(FieldError("heads", f"must divide dim ({dim}), got {heads}"))
    if errors:
        raise SpecError(errors)
    spec = NetworkSpec(
        stem=(PatchEmbedSpec(out_channels=dim, patch_size=patch_size),
              TokensSpec(class_token=class_token, pos_embed=True)),
        stages=((TransformerBlockSpec(heads=heads, mlp_ratio=float(mlp_ratio), qkv_bias=qkv_bias),) * depth,),
        head=(NormSpec(norm="layer"), TokenPoolSpec(mode="cls" if class_token else "mean"),
              LinearSpec(out_features=num_classes)),
        resolution=resolution,
    )
    errors = validate(spec)
    if errors:
        raise SpecError(errors)
    return spec


@builtin("vit_tiny_patch16_224")
def _vit_tiny() -> NetworkSpec:
    return vit(16, 192, 12, 3)


@builtin("vit_small_patch16_224")
def _vit_small() -> NetworkSpec:
    return vit(16, 384, 12, 6)


@builtin("vit_base_patch16_224")
def _vit_base() -> NetworkSpec:
    return vit(16, 768, 12, 12)


@builtin("vit_base_patch32_224")
def _vit_base_32() -> NetworkSpec:
    return vit(32, 768, 12, 12)
