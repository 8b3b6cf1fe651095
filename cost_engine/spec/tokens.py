"""Specs that make patches and move between feature maps and tokens (the glue a ViT needs around its encoder blocks).

A transformer block runs on tokens ``[N, L, D]``; a patchify conv produces a map ``[N, D, H, W]``.
These two small specs turn one into the other and back to one vector per image, so a ViT is an
ordinary network of stem, stages and head like every other family.
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_engine.spec.base import MAX_CHANNELS, Spec, bounded, register

MAX_PATCH = 64


@register("patch_embed")
@dataclass(frozen=True)
class PatchEmbedSpec(Spec):
    """Patchify conv ``[N, C, H, W] -> [N, out_channels, H // p, W // p]``: kernel = stride =
    ``patch_size``, no padding (timm ``PatchEmbed.proj``). Its own kind because a ViT patch (16,
    32) exceeds the stride bound of a plain conv."""

    out_channels: int = bounded(lo=1, hi=MAX_CHANNELS)
    patch_size: int = bounded(16, lo=1, hi=MAX_PATCH)
    bias: bool = True


@register("tokens")
@dataclass(frozen=True)
class TokensSpec(Spec):
    """``[N, C, H, W]`` -> tokens ``[N, H*W (+1), C]`` as timm's ViT: ``flatten(2).transpose(1, 2)``
    (a view), then an optional learnable class token concatenated in front, then an optional
    learnable position embedding added (one per token, so it is sized by the input resolution)."""

    class_token: bool = True
    pos_embed: bool = True


@register("token_pool")
@dataclass(frozen=True)
class TokenPoolSpec(Spec):
    """Tokens ``[N, L, D]`` -> ``[N, D]``: the class token (``x[:, 0]``, a view) or the mean over tokens."""

    mode: str = bounded("cls", choices=("cls", "mean"))
