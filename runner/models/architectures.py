"""Where the parts of a Hugging Face decoder live, whatever the family.

Extraction needs three things from a causal LM: the bare decoder stack to run (no LM head), its
list of blocks, and HF's `hidden_states[0]`. Families name the parts differently (`model.layers`,
`transformer.h`, `gpt_neox.layers`) and build `hidden_states[0]` differently (GPT-2 adds position
embeddings then dropout, Gemma and Gemma 3 scale by sqrt(d) inside their embedding module, Bloom
layer-norms the embeddings). So rather than hook an embedding module per family, the taps record
exactly what transformers 5 records (`transformers/utils/output_capturing.py`): the input of the
first block, each block's output, and the stack's `last_hidden_state` in place of the last block's
output (the final norm, plus any projection a family adds after it). Discovery is generic:
`get_decoder()`, then the ModuleList of `num_hidden_layers` blocks inside it. No family needs an
override today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Families the tests build and check against HF's `output_hidden_states`; other decoder-only
# causal LMs go through the same generic discovery.
TESTED_FAMILIES = ("gemma", "gemma3_text", "gpt2", "gpt_neox", "llama", "mistral", "qwen2")


class UnsupportedArchitecture(ValueError):
    """The model is not a decoder-only causal LM whose parts can be found; the message is one line."""


def _unsupported(model_type: str, class_name: str, what: str) -> UnsupportedArchitecture:
    return UnsupportedArchitecture(
        f"{model_type} ({class_name}): cannot find {what}; supported families: "
        f"{', '.join(TESTED_FAMILIES)} (tested) and other decoder-only *ForCausalLM models")


@dataclass(frozen=True, eq=False)
class DecoderLayout:
    """The parts of one causal LM that extraction and training touch.

    `hidden_states[0]` is, by HF's own definition, the input of `blocks[0]`: for Llama-likes the
    output of the input embeddings, for GPT-2 `drop(wte + wpe)`, so the taps hook the block, not a module.
    """

    model_type: str
    class_name: str
    decoder: nn.Module  # input_ids, attention_mask, position_ids -> last_hidden_state, no LM head
    blocks: nn.ModuleList
    final_norm: nn.Module | None  # None where the stack ends without a norm
    hidden_size: int


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model under a peft PeftModel and/or LoraModel (any BaseTuner)."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTuner

    while isinstance(model, (PeftModel, BaseTuner)):
        model = model.base_model if isinstance(model, PeftModel) else model.model
    return model


def _is_causal_lm(model: nn.Module, model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    names = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type, ())
    names = (names,) if isinstance(names, str) else tuple(names)
    name = type(model).__name__
    # The suffixes admit remote-code models, which are not in the auto mapping.
    return name in names or name.endswith(("ForCausalLM", "LMHeadModel"))


def _find_blocks(decoder: nn.Module, num_layers: int | None) -> nn.ModuleList | None:
    """The shallowest ModuleList holding `num_layers` modules: HF records one state per entry."""
    found = [(name.count("."), module) for name, module in decoder.named_modules()
             if isinstance(module, nn.ModuleList) and len(module) > 0
             and (num_layers is None or len(module) == num_layers)]
    return min(found, key=lambda item: item[0])[1] if found else None


def _find_final_norm(decoder: nn.Module) -> nn.Module | None:
    # HF registers the final norm after the embeddings' norm (Bloom has both), so take the last.
    norms = [child for _, child in decoder.named_children() if "norm" in type(child).__name__.lower()]
    return norms[-1] if norms else None


def decoder_layout(model: nn.Module) -> DecoderLayout:
    """Find the decoder stack, blocks and final norm of a CausalLM, bare or wrapped by peft."""
    from transformers import PreTrainedModel

    lm = unwrap_peft(model)
    config = getattr(lm, "config", None)
    model_type = getattr(config, "model_type", None) or "unknown"
    class_name = type(lm).__name__
    if not isinstance(lm, PreTrainedModel):
        raise _unsupported(model_type, class_name, "a transformers PreTrainedModel")
    if getattr(config, "is_encoder_decoder", False):
        raise _unsupported(model_type, class_name, "a decoder-only stack (it is an encoder-decoder)")
    if not _is_causal_lm(lm, model_type):
        raise _unsupported(model_type, class_name, "a causal LM head (expected a *ForCausalLM model)")
    decoder = lm.get_decoder()
    if decoder is lm or not isinstance(decoder, nn.Module):
        raise _unsupported(model_type, class_name, "the decoder stack under the LM head")
    # Multimodal LMs keep the text sizes on the decoder's own config.
    dconfig = getattr(decoder, "config", config)
    blocks = _find_blocks(decoder, getattr(dconfig, "num_hidden_layers", None))
    if blocks is None:
        raise _unsupported(model_type, class_name, "the list of decoder blocks")
    try:
        embeddings = decoder.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        embeddings = None
    if embeddings is None:
        raise _unsupported(model_type, class_name, "the input embeddings")
    hidden_size = getattr(dconfig, "hidden_size", None) or getattr(embeddings, "embedding_dim", None)
    if hidden_size is None:
        raise _unsupported(model_type, class_name, "the hidden size")
    return DecoderLayout(model_type=model_type, class_name=class_name, decoder=decoder,
                         blocks=blocks, final_norm=_find_final_norm(decoder),
                         hidden_size=int(hidden_size))


class LastTokenTaps:
    """Forward hooks that keep the last position of every hidden state of one forward pass.

    Layer 0 is the embedding output, layers 1..L-1 the blocks' outputs, and layer L the stack's
    last_hidden_state (the final norm's output): exactly HF's `output_hidden_states`, where only
    the last entry is normed. Inputs must be left-padded so position -1 is every row's last token.
    """

    def __init__(self, layout: DecoderLayout):
        self.taps: list[torch.Tensor] = []
        blocks = list(layout.blocks)
        self.handles = [blocks[0].register_forward_pre_hook(self._keep_input, with_kwargs=True)]
        self.handles += [block.register_forward_hook(self._keep_output) for block in blocks[:-1]]
        # The stack's output, not the last block's: HF swaps in last_hidden_state the same way.
        self.handles.append(layout.decoder.register_forward_hook(self._keep_output))
        self.num_layers = len(blocks) + 1

    def _keep(self, hidden: torch.Tensor) -> None:
        # A copy, so the taps never pin a layer's whole [batch, length, d] output in memory.
        self.taps.append(hidden[:, -1, :].to(torch.float32, copy=True))

    def _keep_input(self, module, args, kwargs) -> None:
        self._keep(args[0] if args else kwargs["hidden_states"])

    def _keep_output(self, module, inputs, output) -> None:
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None:
            hidden = output[0] if isinstance(output, (tuple, list)) else output
        self._keep(hidden)

    def collect(self) -> torch.Tensor:
        """[batch, layers, d] for the forward pass that just ran."""
        taps, self.taps = self.taps, []
        if len(taps) != self.num_layers:
            raise RuntimeError(f"expected {self.num_layers} taps from one forward pass, got {len(taps)}: "
                               "run the model exactly once per collect()")
        return torch.stack(taps, dim=1)

    def remove(self) -> None:
        """Detach the hooks, e.g. before handing the model to training."""
        for handle in self.handles:
            handle.remove()
        self.handles, self.taps = [], []


def default_lora_targets(model_type: str) -> list[str]:
    """peft's own default LoRA target modules for a transformers `model_type`."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING

    if model_type not in MAPPING:
        raise UnsupportedArchitecture(
            f"{model_type}: peft has no default LoRA target modules for this model type; "
            "name them explicitly (LoRA target_modules)")
    return list(MAPPING[model_type])


def _attention_heads(hidden_size: int, num_heads: int) -> dict[str, int]:
    # Defaults would otherwise mismatch a tiny model (Gemma's head_dim is 256, Qwen2 has 32 KV heads).
    return {"num_key_value_heads": num_heads, "head_dim": hidden_size // num_heads}


def tiny_config(family: str, *, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                vocab_size: int, max_positions: int = 1024, **overrides: Any):
    """A transformers config for a tiny random model of `family` (one of `TESTED_FAMILIES`).

    `overrides` go to the config unchanged (token ids, `tie_word_embeddings`, dropout...). Special
    token ids default to None: the families' defaults (GPT-2's 50256) lie outside a tiny vocab.
    """
    from transformers import AutoConfig

    if family not in TESTED_FAMILIES:
        raise UnsupportedArchitecture(
            f"{family}: no tiny config for this family; choose one of {', '.join(TESTED_FAMILIES)}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
    kwargs: dict[str, Any] = dict(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, vocab_size=vocab_size, max_position_embeddings=max_positions,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if family == "gpt2":
        # GPT-2 calls its MLP width n_inner and has no alias for intermediate_size.
        kwargs["n_inner"] = kwargs.pop("intermediate_size")
    elif family != "gpt_neox":
        kwargs.update(_attention_heads(hidden_size, num_heads))
    if family == "gemma3_text":
        kwargs.update(_gemma3_attention(num_layers, kwargs["head_dim"]))
    return AutoConfig.for_model(family, **{**kwargs, **overrides})


def _gemma3_attention(num_layers: int, head_dim: int) -> dict[str, Any]:
    """Gemma 3's attention, scaled down: one KV head (as in the 270M model), queries scaled by
    head_dim, and local sliding-window layers between global ones, the last layer global. Every
    other layer is global (Gemma 3's own ratio, five local to one global, would leave a tiny model
    without a global layer), and the window is shorter than the tests' prompts, so it binds."""
    layer_types = ["full_attention" if (num_layers - 1 - i) % 2 == 0 else "sliding_attention" for i in range(num_layers)]
    return {"num_key_value_heads": 1, "query_pre_attn_scalar": head_dim, "sliding_window": 8, "layer_types": layer_types}
