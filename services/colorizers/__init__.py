"""Colourisation models, colour maths and the one inference pipeline shared by every service."""

from colorizers.registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
