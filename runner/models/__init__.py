"""Base models: where they come from (`resolve`), one model with adapters swapped in place
(`adapted`) and each family's decoder layout (`architectures`)."""

from typing import Any

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


def __getattr__(name: str) -> Any:
    # AdaptedModel pulls in torch: imported on first use, so the CLI's checks and dry runs never pay for it.
    if name == "AdaptedModel":
        from runner.models.adapted import AdaptedModel

        return AdaptedModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
