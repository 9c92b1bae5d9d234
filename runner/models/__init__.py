"""Base models: where they come from (`resolve`), one model with adapters swapped in place
(`adapted`) and each family's decoder layout (`architectures`)."""

from runner.models.adapted import AdaptedModel
from runner.models.resolve import (
    ModelUnavailableError,
    check_model_location,
    checkpoint_kind,
    load_base_model,
    load_tokenizer,
    pick_device,
    pick_dtype,
    resolve_model,
)

__all__ = ["AdaptedModel", "ModelUnavailableError", "check_model_location", "checkpoint_kind", "load_base_model",
           "load_tokenizer", "pick_device", "pick_dtype", "resolve_model"]
