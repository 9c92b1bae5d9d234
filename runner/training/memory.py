"""The per-job memory plan: micro-batch, gradient accumulation and activation checkpointing.

Arithmetic on the model's shape (no torch, no Ray; the shape comes from the tiny config, a
config.json in a local folder or the HF cache, or KNOWN_SHAPES): the train stage and `--dry-run` call it before launch with
the GPU named in `resources`, and each training worker calls it again with its real device's
memory. The global batch of a job is always kept: micro-batch x accumulation x workers.

The estimate of a step's peak GPU memory, per worker, for LoRA under DeepSpeed ZeRO-0/1/2
(frozen weights replicated on every GPU; ZeRO-3 is excluded by the config):

    weights        N x bytes(dtype)
    LoRA state     adapter weights and grads in the model dtype, fp32 master + grad + Adam m, v
    overhead       CUDA allocator slack and DeepSpeed buffers (fitted)
    activations    per token, without checkpointing: every layer's saved tensors,
                       L x bytes x (C_H x h + C_I x i) + the LoRA dropout copies of the targets' inputs
                   with checkpointing: each layer's input (L x bytes x h) plus two layers' saved
                       tensors (the layer being recomputed and its gradients)
                   plus the LM head and the fp32 log-softmax at target positions only

C_H and the overhead were fitted to one H200 (random-weight Llama-2-7B, ZeRO-2 bf16, LoRA r=8 on
q_proj/v_proj, 1024 tokens, micro-batch 1-16): every one of the ten measured peaks in
CALIBRATION is reproduced within 10% (tests/test_memory.py), which is what the headroom covers.

Which plan: among the micro-batches that divide the per-worker batch, with and without
checkpointing, the fastest that fits by the MFU measured on the same H200 (MFU_TABLE). That is
the largest micro-batch without checkpointing whenever it reaches ~4K tokens; below that,
checkpointing with a bigger micro-batch wins (micro-batch 1 alone reaches 23.5% MFU, 8 with
checkpointing 43.1%), so on a 24 GB GPU the 7B control runs checkpointed at micro-batch 8.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.config import ConfigError, ExperimentConfig

if TYPE_CHECKING:
    from runner.plan import TrainJob

GIB = 2**30
# Fraction of the device's memory a plan may use: fragmentation, the CUDA context, NCCL buffers.
HEADROOM = 0.9
# Fitted to CALIBRATION (see the module docstring): saved activation elements per token per layer,
# in units of the hidden size and of the MLP's intermediate size (gate, SiLU, up, product).
C_H, C_I = 6.5, 4.0
OVERHEAD_GIB = 0.5
# Planning assumption: the share of tokens that are targets (the LM head runs only there). Flan
# answers are short; encode_example caps a target at half of max_length.
TARGET_FRACTION = 0.125


@dataclass(frozen=True)
class GPU:
    memory_gib: float   # as CUDA reports it (torch.cuda.get_device_properties), not the label's GB
    bf16_tflops: float  # dense bf16 tensor-core peak from the datasheet


GPUS: dict[str, GPU] = {
    "A10G": GPU(22.0, 125.0),       # AWS g5; NVIDIA publishes the A10's rate, the A10G's clocks are lower
    "L4": GPU(22.0, 121.0),         # AWS g6
    "L40S": GPU(44.4, 362.0),       # AWS g6e (cluster.yaml)
    "A100-40GB": GPU(39.4, 312.0),
    "A100-80GB": GPU(79.1, 312.0),
    "H100": GPU(79.1, 989.0),       # SXM
    "H200": GPU(139.8, 989.0),
}
DEFAULT_GPU = "L40S"  # cluster.yaml's GPU: the dry run's guess when resources.gpu_type is unset


def gpu_named(device_name: str) -> str | None:
    """The GPUS entry for a CUDA device name ("NVIDIA A100-SXM4-80GB" -> "A100-80GB"), if any."""
    words = set(device_name.upper().replace("-", " ").split())
    matches = [name for name in GPUS if set(name.upper().split("-")) <= words]
    return max(matches, key=len) if matches else None


# Norm weights per block, as (vectors of hidden size, vectors of head_dim): Llama-likes norm the
# input of attention and of the MLP; Gemma 2 and 3 norm their outputs too, and Gemma 3 also norms
# every head's queries and keys.
BLOCK_NORMS: dict[str, tuple[int, int]] = {"gemma2": (4, 0), "gemma3_text": (4, 2)}
# GPT-2 and GPT-NeoX: fused QKV, a two-matrix MLP, biases on every linear layer and LayerNorms
# (weight and bias) instead of RMSNorms.
GPT_STYLE = ("gpt2", "gpt_neox")


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    model_type: str = "llama"
    head_dim: int | None = None

    @classmethod
    def from_hf_config(cls, cfg: dict) -> ModelShape:
        """From a Hugging Face config.json (as a dict); GPT-2's own key names (n_embd, n_layer,
        n_head, n_inner: None means 4 x n_embd) are read too."""
        hidden = cfg.get("hidden_size") or cfg["n_embd"]
        heads = cfg.get("num_attention_heads") or cfg["n_head"]
        intermediate = cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden
        return cls(hidden=hidden, layers=cfg.get("num_hidden_layers") or cfg["n_layer"], heads=heads,
                   kv_heads=cfg.get("num_key_value_heads") or heads, intermediate=intermediate,
                   vocab=cfg["vocab_size"], tied=bool(cfg.get("tie_word_embeddings", False)),
                   model_type=cfg.get("model_type", "llama"), head_dim=cfg.get("head_dim"))

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def module_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of a block, by its module name (Llama-style, or
        GPT-2's and GPT-NeoX's own).

        Attention is heads x head_dim wide, which need not be the hidden size (Gemma 3 270M: 4 x 256
        from 640), and keys and values have their own head count (1 in Gemma 3 270M)."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.dim_per_head, self.kv_heads * self.dim_per_head
        if self.model_type == "gpt2":  # attn.c_proj and mlp.c_proj share the name c_proj
            return {"c_attn": (h, 3 * h), "attn.c_proj": (h, h), "c_fc": (h, i), "mlp.c_proj": (i, h)}
        if self.model_type == "gpt_neox":
            return {"query_key_value": (h, 3 * h), "dense": (h, h), "dense_h_to_4h": (h, i), "dense_4h_to_h": (i, h)}
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def _biases_and_norms(self) -> tuple[int, int]:
        """(per block, after the last block): parameters outside the linear layers' weights."""
        if self.model_type in GPT_STYLE:
            return sum(out for _, out in self.module_dims().values()) + 4 * self.hidden, 2 * self.hidden
        hidden_norms, head_norms = BLOCK_NORMS.get(self.model_type, (2, 0))
        biases = self.heads * self.dim_per_head + 2 * self.kv_heads * self.dim_per_head \
            if self.model_type == "qwen2" else 0  # Qwen2's q, k and v projections have biases
        return biases + hidden_norms * self.hidden + head_norms * self.dim_per_head, self.hidden

    @property
    def block_params(self) -> int:
        """Parameters of the transformer blocks and final norm: the N of 6N FLOPs per trained token
        (the embedding is a lookup; the LM head runs only at target positions)."""
        extra, final = self._biases_and_norms()
        return self.layers * (sum(a * b for a, b in self.module_dims().values()) + extra) + final

    @property
    def params(self) -> int:
        return self.block_params + self.vocab * self.hidden * (1 if self.tied else 2)

    def targeted_dims(self, targets: list[str]) -> list[tuple[int, int]]:
        """(in, out) of each block module LoRA adapts: a target names a module by the last part of
        its name, as peft matches it ("c_proj" adapts both of GPT-2's c_proj layers)."""
        return [dims for name, dims in self.module_dims().items() if name.rsplit(".", 1)[-1] in targets]

    def lora_params(self, r: int, targets: list[str]) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.targeted_dims(targets))


def _llama(h: int, layers: int, heads: int, kv: int, i: int, vocab: int, tied: bool = False) -> ModelShape:
    return ModelShape(hidden=h, layers=layers, heads=heads, kv_heads=kv, intermediate=i, vocab=vocab, tied=tied)


# 268,098,176 parameters, as the converted checkpoint holds (tied embedding: 167,772,160 of them).
GEMMA3_270M = ModelShape(hidden=640, layers=18, heads=4, kv_heads=1, intermediate=2048, vocab=262144, tied=True,
                         model_type="gemma3_text", head_dim=256)
# Shapes for the dry run when a hub model's config.json is not cached locally.
KNOWN_SHAPES: dict[str, ModelShape] = {
    "meta-llama/Llama-2-7b-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "meta-llama/Llama-2-7b-chat-hf": _llama(4096, 32, 32, 32, 11008, 32000),
    "meta-llama/Llama-2-13b-hf": _llama(5120, 40, 40, 40, 13824, 32000),
    "meta-llama/Meta-Llama-3-8B": _llama(4096, 32, 32, 8, 14336, 128256),
    "meta-llama/Llama-3.1-8B": _llama(4096, 32, 32, 8, 14336, 128256),
    "smollm2-135m": _llama(576, 30, 9, 3, 1536, 49152, tied=True),
    "HuggingFaceTB/SmolLM2-135M-Instruct": _llama(576, 30, 9, 3, 1536, 49152, tied=True),
    "HuggingFaceTB/SmolLM2-135M": _llama(576, 30, 9, 3, 1536, 49152, tied=True),
    "gemma3-270m": GEMMA3_270M,
    "google/gemma-3-270m": GEMMA3_270M,
}

# One NVIDIA H200, random-weight Llama-2-7B, ZeRO-2 bf16, LoRA r=8 on q_proj/v_proj, 1024 tokens:
# micro-batch -> (peak GiB, MFU as 6N per token vs 989 TFLOP/s), without / with checkpointing.
CALIBRATION = {
    False: {1: (18.3, 0.235), 2: (23.1, 0.440), 4: (33.2, 0.546), 8: (53.7, 0.582), 16: (94.7, 0.589)},
    True: {1: (14.1, 0.114), 2: (14.5, 0.206), 4: (15.4, 0.413), 8: (17.7, 0.431), 16: (22.8, 0.437)},
}
CALIBRATION_TOKENS = 1024
# The measured step rate at the paper's setting (micro-batch 16 x 1024 tokens, no checkpointing).
H200_TOKENS_PER_S = 14_954


def shape_of(config: ExperimentConfig, model_dir: str | None = None) -> ModelShape:
    """The model's shape: the tiny config, a config.json (local or in the HF cache) or KNOWN_SHAPES."""
    if config.model.name == "tiny-llama":
        t = config.model.tiny
        return _llama(t.hidden_size, t.num_layers, t.num_heads, t.num_heads, t.intermediate_size, t.vocab_size,
                      tied=True)
    for folder in (model_dir, config.model.name):
        if folder and (Path(folder).expanduser() / "config.json").is_file():
            return ModelShape.from_hf_config(json.loads((Path(folder).expanduser() / "config.json").read_text()))
    if "/" in config.model.name:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(config.model.name, "config.json", revision=config.model.revision)
            if isinstance(cached, str):
                return ModelShape.from_hf_config(json.loads(Path(cached).read_text()))
        except ImportError:
            pass
    if config.model.name in KNOWN_SHAPES:
        return KNOWN_SHAPES[config.model.name]
    raise ConfigError(f"model.name {config.model.name!r}: shape unknown offline; cache its config.json "
                      "(`hf download MODEL config.json`) or add it to runner.training.memory.KNOWN_SHAPES")


def default_lora_targets(model_type: str) -> list[str]:
    """The architecture's LoRA targets (peft's per-model-type mapping); the one place to swap."""
    try:
        from runner.models.architectures import default_lora_targets as lookup
    except ImportError:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as mapping

        def lookup(kind: str) -> list[str]:
            if kind not in mapping:
                raise ConfigError(f"lora.target_modules: no default for model type {kind!r}; list the modules")
            return list(mapping[kind])
    return list(lookup(model_type))


def lora_targets(config: ExperimentConfig, model_type: str) -> list[str]:
    return list(config.lora.target_modules) if config.lora.target_modules else default_lora_targets(model_type)


def _dtype_bytes(config: ExperimentConfig) -> int:
    precision = config.deepspeed.precision
    if precision == "auto":
        precision = {"float32": "fp32", "float16": "fp16"}.get(config.model.dtype, "bf16")
    return 4 if precision == "fp32" else 2


def _mfu_from_table(tokens: int, checkpointing: bool) -> float:
    """MFU measured on the H200 at this many tokens per micro-batch (log-linear in between)."""
    points = sorted((mb * CALIBRATION_TOKENS, mfu) for mb, (_, mfu) in CALIBRATION[checkpointing].items())
    if tokens <= points[0][0]:
        return points[0][1] * tokens / points[0][0]  # below one 1K-token row the GPU idles further
    for (t0, m0), (t1, m1) in zip(points, points[1:]):
        if tokens <= t1:
            w = (math.log2(tokens) - math.log2(t0)) / (math.log2(t1) - math.log2(t0))
            return m0 + w * (m1 - m0)
    return points[-1][1]


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GiB of one worker's training step, by part."""

    weights: float
    trainable_state: float  # the trained parameters' gradients and optimizer state (and a LoRA adapter's weights)
    overhead: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.trainable_state + self.overhead + self.activations


def estimate_memory(shape: ModelShape, *, micro_batch: int, max_length: int, checkpointing: bool, lora_r: int,
                    targets: list[str], lora_dropout: float, dtype_bytes: int = 2, workers: int = 1,
                    zero_stage: int = 2, method: str = "lora") -> MemoryEstimate:
    b, h, i = dtype_bytes, shape.hidden, shape.intermediate
    shard = lambda stage: workers if zero_stage >= stage else 1  # ZeRO-1 shards optimizer state, ZeRO-2 gradients too
    if method == "full":
        # Every weight: its gradient in the model dtype, fp32 master, grad and Adam m, v.
        trained = shape.params
        fp32_state = 16 * trained if b == 2 else 12 * trained
        state_bytes = b * trained / shard(2) + fp32_state / shard(1)
        dropout = 0
    else:
        # Adapter weights + grads in the model dtype; fp32 master, grad and Adam m, v (partitioned by ZeRO>=1).
        trained = shape.lora_params(lora_r, targets)
        fp32_state = 16 * trained if b == 2 else 12 * trained
        state_bytes = 2 * b * trained + fp32_state / shard(1)
        dropout = (b + 1) * sum(a for a, _ in shape.targeted_dims(targets)) if lora_dropout > 0 else 0
    layer = b * (C_H * h + C_I * i) + dropout  # bytes saved per token by one layer
    head = TARGET_FRACTION * shape.vocab * (b + 8)  # logits, their fp32 log-softmax and its gradient
    per_token = (shape.layers * b * h + 2 * layer if checkpointing else shape.layers * layer) + head
    return MemoryEstimate(weights=shape.params * b / GIB, trainable_state=state_bytes / GIB, overhead=OVERHEAD_GIB,
                          activations=micro_batch * max_length * per_token / GIB)


@dataclass(frozen=True)
class MemoryPlan:
    micro_batch: int
    accumulation: int
    checkpointing: bool
    workers: int
    batch_size: int                   # the job's global batch: micro_batch x accumulation x workers
    estimated_gib: float | None       # None on CPU
    capacity_gib: float | None        # usable device memory (HEADROOM of it); None on CPU
    fits: bool
    device: str = "cuda"              # "cuda" or "cpu"
    gpu: str | None = None            # the GPU's name when known
    mfu: float | None = None          # predicted (MFU_TABLE), GPU only

    def describe(self) -> str:
        what = (f"micro-batch {self.micro_batch} x {self.accumulation} accumulation"
                f"{f' x {self.workers} workers' if self.workers > 1 else ''}, "
                f"{'checkpointing' if self.checkpointing else 'no checkpointing'}")
        if self.device == "cpu":
            return f"{what} (CPU: no memory plan, the configured micro-batch)"
        device = f" ({self.gpu})" if self.gpu else ""
        verdict = "" if self.fits else " DOES NOT FIT"
        return f"{what}, ~{self.estimated_gib:.0f} GiB of {self.capacity_gib / HEADROOM:.0f}{device}{verdict}"


def device_memory_hint(config: ExperimentConfig) -> tuple[float, str]:
    """The dry run's device memory (GiB) and GPU name: resources.gpu_memory_gb, gpu_type, else DEFAULT_GPU."""
    res = config.resources
    name = res.gpu_type or DEFAULT_GPU
    if name not in GPUS:
        raise ConfigError(f"resources.gpu_type {name!r}: unknown; expected one of {', '.join(GPUS)} "
                          "(or set resources.gpu_memory_gb)")
    return (res.gpu_memory_gb or GPUS[name].memory_gib), name


def plan_job_memory(config: ExperimentConfig, job: TrainJob, device_memory_gib: float | None = None, *,
                    device: str | None = None, shape: ModelShape | None = None, gpu: str | None = None,
                    strict: bool = True) -> MemoryPlan:
    """Micro-batch, accumulation and checkpointing for one training job under `config` (the job's own,
    or another to ask what it would change).

    `device_memory_gib`: the worker's real device memory; None = the config's hint (dry run).
    `device`: "cuda" or "cpu"; None = GPU when the job asks for GPUs and model.device allows.
    Raises ConfigError (one line, what to change) when nothing fits, unless strict=False, which
    returns the smallest plan with fits=False instead."""
    t = config.training
    batch, workers = job.batch_size, job.workers
    per_worker = batch // workers
    if per_worker * workers != batch:
        raise ConfigError(f"job {job.id}: batch {batch} does not split over {workers} workers")
    if device is None:
        device = "cuda" if job.gpus_per_worker > 0 and config.model.device != "cpu" else "cpu"
    where = f"job {job.id}"
    if t.micro_batch_size is not None and per_worker % t.micro_batch_size:
        raise ConfigError(f"training.micro_batch_size {t.micro_batch_size}: must divide {where}'s per-worker batch "
                          f"{per_worker} (batch {batch} over {workers} workers)")
    if device == "cpu":
        micro = t.micro_batch_size or per_worker
        return MemoryPlan(micro_batch=micro, accumulation=per_worker // micro, checkpointing=t.gradient_checkpointing == "on",
                          workers=workers, batch_size=batch, estimated_gib=None, capacity_gib=None, fits=True, device="cpu")

    if device_memory_gib is None:
        device_memory_gib, hinted = device_memory_hint(config)
        gpu = gpu or hinted
    shape = shape or shape_of(config)
    targets = lora_targets(config, shape.model_type)
    capacity = device_memory_gib * HEADROOM
    micro_options = [t.micro_batch_size] if t.micro_batch_size else [m for m in range(1, per_worker + 1)
                                                                     if per_worker % m == 0]
    ckpt_options = {"on": [True], "off": [False], "auto": [False, True]}[t.gradient_checkpointing]

    def candidate(micro: int, ckpt: bool) -> MemoryPlan:
        est = estimate_memory(shape, micro_batch=micro, max_length=t.max_length, checkpointing=ckpt,
                              lora_r=config.lora.r, targets=targets, lora_dropout=config.lora.dropout,
                              dtype_bytes=_dtype_bytes(config), workers=workers, zero_stage=config.deepspeed.zero_stage,
                              method=t.method)
        return MemoryPlan(micro_batch=micro, accumulation=per_worker // micro, checkpointing=ckpt, workers=workers,
                          batch_size=batch, estimated_gib=est.total, capacity_gib=capacity,
                          fits=est.total <= capacity, device="cuda", gpu=gpu,
                          mfu=_mfu_from_table(micro * t.max_length, ckpt))

    plans = [candidate(m, c) for m in micro_options for c in ckpt_options]
    fitting = [p for p in plans if p.fits]
    if fitting:
        # Fastest first; on a tie, no checkpointing, then the larger micro-batch.
        return max(fitting, key=lambda p: (round(p.mfu, 3), not p.checkpointing, p.micro_batch))
    smallest = min(plans, key=lambda p: p.estimated_gib)
    if not strict:
        return smallest
    forced = []
    if t.micro_batch_size:
        forced.append(f"training.micro_batch_size {t.micro_batch_size}")
    if t.gradient_checkpointing == "off":
        forced.append("training.gradient_checkpointing off")
    fix = (f"unset {' and '.join(forced)}, or " if forced else "") + (
        f"use fewer tokens (training.max_length {t.max_length}), a GPU with more memory (resources.gpu_type), "
        f"or a smaller model")
    raise ConfigError(f"{where}: {config.model.name} does not fit {device_memory_gib:.0f} GiB"
                      f"{f' ({gpu})' if gpu else ''}: even {smallest.describe().split(', ~')[0]} needs "
                      f"~{smallest.estimated_gib:.0f} GiB of {capacity:.0f} usable; {fix}")


def predicted_tokens_per_s(plan: MemoryPlan, shape: ModelShape, bf16_tflops: float) -> float:
    """Per-GPU training tokens/s: the plan's MFU (measured on the H200) x this GPU's peak, over 6N."""
    return (plan.mfu or _mfu_from_table(plan.micro_batch * CALIBRATION_TOKENS, plan.checkpointing)) \
        * bf16_tflops * 1e12 / (6 * shape.block_params)


def calibration_rows() -> list[dict]:
    """The H200 measurements beside this module's estimates (for the benchmark and the tests)."""
    shape = KNOWN_SHAPES["meta-llama/Llama-2-7b-hf"]
    rows = []
    for ckpt, table in CALIBRATION.items():
        for micro, (peak, mfu) in table.items():
            est = estimate_memory(shape, micro_batch=micro, max_length=CALIBRATION_TOKENS, checkpointing=ckpt, lora_r=8,
                                  targets=["q_proj", "v_proj"], lora_dropout=0.05)
            rows.append({"micro_batch": micro, "checkpointing": ckpt, "measured_gib": peak,
                         "estimated_gib": round(est.total, 2), "error": est.total / peak - 1, "mfu": mfu})
    return rows
