"""Imports every family module, registering the built-in names."""

from cost_engine.families import (  # noqa: F401
    convnext,
    efficientnet,
    fasternet,
    mobilenet,
    regnet,
    resnet,
    shufflenet,
    vit,
)
