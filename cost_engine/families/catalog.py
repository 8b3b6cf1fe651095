"""Imports every family module, registering the built-in names."""
from cost_engine.families import efficientnet, fasternet, mobilenet, shufflenet  # noqa: F401
from cost_engine.families import convnext, regnet, resnet, vit  # noqa: F401
