"""Architectures, the registry of names, and weight loading."""
from rnopt.models.registry import (
    MODELS,
    LoadedModel,
    ModelSpec,
    Preprocessing,
    count_params_and_macs,
    create_model,
    get_spec,
    list_models,
)

__all__ = ["MODELS", "LoadedModel", "ModelSpec", "Preprocessing", "count_params_and_macs", "create_model",
           "get_spec", "list_models"]
