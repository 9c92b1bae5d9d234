"""One base model on one device with LoRA adapters swapped in place (pretrained, E and every C_t
share one copy of the base weights); fully fine-tuned models of the run swap their weights into the
same modules, so a full fine-tuning run keeps one model per actor too."""

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
                 revision: str | None = None, weights: dict[str, str] | None = None):
        self.tokenizer = load_tokenizer(model_dir, revision)
        self.device = device
        self.adapter_paths = dict(adapters)
        # Fully fine-tuned models (training.method full): name -> a model folder whose weights replace the
        # base's in place while it is used; the base's own are kept on the CPU to put back.
        self.weight_paths = dict(weights or {})
        self._in_place: str | None = None  # whose weights the modules hold now (None: the base's)
        self._pristine: dict[str, torch.Tensor] | None = None
        self.model = load_base_model(model_dir, device, dtype, revision).eval()
        self._plain = self.model  # the transformers model under any peft wrapper (the same modules)
        if adapters:
            from peft import PeftModel

            from runner.artifacts.store import loading

            first = next(iter(adapters))
            with loading(Path(adapters[first]), f"adapter {first}"):
                self.model = PeftModel.from_pretrained(self.model, adapters[first], adapter_name=first).eval()

    def use(self, adapter: str | None):
        """A context manager under which `self.model` is the base (None), base + `adapter`, or a fully
        fine-tuned model of `weight_paths`."""
        if adapter in self.weight_paths:
            self._swap_weights(adapter)
            return self.model.disable_adapter() if self.adapter_paths else contextlib.nullcontext()
        self._swap_weights(None)
        if adapter is None:
            return self.model.disable_adapter() if self.adapter_paths else contextlib.nullcontext()
        if adapter not in self.model.peft_config:
            from runner.artifacts.store import loading

            with loading(Path(self.adapter_paths[adapter]), f"adapter {adapter}"):
                self.model.load_adapter(self.adapter_paths[adapter], adapter_name=adapter)
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def _swap_weights(self, name: str | None) -> None:
        """Put `name`'s weights (None: the base's) into the model's modules, in place."""
        if name == self._in_place:
            return
        target = self._plain.state_dict()
        if self._pristine is None:
            self._pristine = {k: v.detach().to("cpu", copy=True) for k, v in target.items()}
        state = self._pristine if name is None else _read_weights(Path(self.weight_paths[name]), f"model {name}")
        unmatched = []
        with torch.no_grad():
            for key, value in state.items():
                # A peft wrapper renames an adapted module's weight to <module>.base_layer.<param>.
                dest = target.get(key)
                if dest is None:
                    module, _, param = key.rpartition(".")
                    dest = target.get(f"{module}.base_layer.{param}")
                if dest is None or dest.shape != value.shape:
                    unmatched.append(key)
                    continue
                dest.copy_(value.to(dest.dtype))
        if unmatched:  # a pass labelled with this model must never run on the base's weights instead
            raise RuntimeError(f"model {name}: {len(unmatched)} weight(s) fit no module of the base (first: "
                               f"{unmatched[0]}); it was not trained from this base: re-run training")
        self._in_place = name


def _read_weights(folder: Path, what: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from runner.artifacts.store import loading

    with loading(folder, what):
        state: dict[str, torch.Tensor] = {}
        for file in sorted(folder.glob("*.safetensors")):
            state |= load_file(str(file))
    if not state:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights; re-run training to rebuild this model")
    return state
