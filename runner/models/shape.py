"""Does an experimental model read the base model's inputs the same way? Compared from metadata only.

MOSSA compares the same inputs token by token and layer by layer, so a published experimental
model must have the base's hidden size, number of layers and vocabulary. Read from config.json
(AutoConfig reads no weights), a GGUF file's header, a peft adapter's safetensors header, and the
tokenizers' vocabularies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from runner.models.external import ADAPTER, GGUF, ExternalModel, config_file, gguf_path


@dataclass(frozen=True)
class Shape:
    hidden_size: int | None
    num_layers: int | None
    vocab_size: int | None


def config_shape(where: str | Path, revision: str | None = None) -> Shape:
    """The decoder's sizes from a folder's (or hub repo's) config.json; multimodal wrappers' text config."""
    from transformers import AutoConfig

    from runner.models.resolve import ModelUnavailableError

    try:
        config = AutoConfig.from_pretrained(str(where), revision=revision)
    except OSError as err:  # not cached and no hub: one line, not a traceback
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ModelUnavailableError(f"{where}: cannot read its config.json ({first}); download it where there is "
                                    "network, or pass a local folder") from None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return Shape(getattr(text, "hidden_size", None), getattr(text, "num_hidden_layers", None),
                 getattr(text, "vocab_size", None))


def gguf_shape(path: Path) -> Shape:
    """The sizes in a GGUF file's header (`<arch>.embedding_length`, `<arch>.block_count`, the token list)."""
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def value(key: str):
        field = fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    tokens = fields.get("tokenizer.ggml.tokens")
    return Shape(value(f"{arch}.embedding_length"), value(f"{arch}.block_count"),
                 None if tokens is None else len(tokens.data))


# LoRA factors whose input is the residual stream: lora_A's second dimension is the hidden size.
_RESIDUAL_INPUT = re.compile(r"\.(q_proj|k_proj|v_proj|gate_proj|up_proj|query_key_value|c_attn)\.lora_A\b")
_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.|\.h\.(\d+)\.")


def adapter_problem(folder: Path, base: Shape) -> str | None:
    """What in a peft adapter's weights (their safetensors header) does not fit the base; None when it fits."""
    from safetensors import safe_open

    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        return None  # a .bin adapter: peft says it at load time
    with safe_open(str(weights), "pt") as f:
        for name in f.keys():
            index = _LAYER_INDEX.search(name)
            layer = next((int(g) for g in index.groups() if g is not None), None) if index else None
            if layer is not None and base.num_layers is not None and layer >= base.num_layers:
                return f"it adapts layer {layer} but the base has {base.num_layers} layers"
            if _RESIDUAL_INPUT.search(name) and base.hidden_size is not None:
                hidden = f.get_slice(name).get_shape()[1]
                if hidden != base.hidden_size:
                    return f"its {name} reads hidden size {hidden}, the base's is {base.hidden_size}"
    return None


def _vocab(where: str | Path, revision: str | None = None) -> dict[str, int] | None:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(where), revision=revision).get_vocab()
    except (OSError, ValueError, TypeError):
        return None  # no tokenizer files there: the config's vocab_size is all there is to compare


def mismatch(model: ExternalModel, base_dir: str, base_revision: str | None = None) -> str | None:
    """Why `model` cannot be compared with the base token by token (one clause), or None."""
    base = config_shape(base_dir, base_revision)
    if model.kind == ADAPTER:
        local = Path(model.path)
        return adapter_problem(local, base) if local.is_dir() else None
    if model.kind == GGUF:
        theirs = gguf_shape(gguf_path(model))
    else:
        theirs = config_shape(config_file(model).parent if Path(model.path).is_dir() else model.path, model.revision)
    for what, mine, other in (("hidden size", base.hidden_size, theirs.hidden_size),
                              ("number of layers", base.num_layers, theirs.num_layers),
                              ("vocabulary size", base.vocab_size, theirs.vocab_size)):
        if mine is not None and other is not None and mine != other:
            return f"its {what} is {other}, the base's is {mine}"
    if model.kind != GGUF:
        ours, others = _vocab(base_dir, base_revision), _vocab(model.path, model.revision)
        if ours is not None and others is not None and ours != others:
            return f"its tokenizer's vocabulary differs from the base's ({len(others)} vs {len(ours)} tokens)"
    return None
