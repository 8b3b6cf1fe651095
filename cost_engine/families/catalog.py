"""Imports every family module, registering the built-in names."""
