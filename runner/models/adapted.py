"""One base model on one device with LoRA adapters swapped in place (pretrained, E and every C_t
share one copy of the base weights)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from runner.models.resolve import load_base_model, load_tokenizer


class AdaptedModel:
    """One base model on one device with peft LoRA adapters swapped in place.

    Adapters are loaded on first use; `use(None)` runs the bare base model (adapters disabled),
    `use(name)` the base with that adapter. Shared by the stages that score or encode several
    models (pretrained, E, every C_t) with one copy of the base weights.
    """

    def __init__(self, model_dir: str, device: str, dtype: torch.dtype, adapters: dict[str, str],
                 revision: str | None = None):
        self.tokenizer = load_tokenizer(model_dir, revision)
        self.device = device
        self.adapter_paths = dict(adapters)
        self.model = load_base_model(model_dir, device, dtype, revision).eval()
        if adapters:
            from peft import PeftModel

            from runner.artifacts.store import loading

            first = next(iter(adapters))
            with loading(Path(adapters[first]), f"adapter {first}"):
                self.model = PeftModel.from_pretrained(self.model, adapters[first], adapter_name=first).eval()

    def use(self, adapter: str | None):
        """A context manager under which `self.model` is the base (None) or base + `adapter`."""

        if adapter is None:
            return self.model.disable_adapter() if self.adapter_paths else contextlib.nullcontext()
        if adapter not in self.model.peft_config:
            from runner.artifacts.store import loading

            with loading(Path(self.adapter_paths[adapter]), f"adapter {adapter}"):
                self.model.load_adapter(self.adapter_paths[adapter], adapter_name=adapter)
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()
