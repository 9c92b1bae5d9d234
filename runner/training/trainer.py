"""The LoRA (or full fine-tuning) + DeepSpeed training step without Ray: build, step, validate, save.

`Trainer` trains one job (E or a control) on one rank of a data-parallel group that already
exists (Ray Train makes it on the cluster; `ensure_process_group` makes a one-process group for
tests and benchmarks). `runner.training.worker` adapts it to Ray: context, checkpoints, reports.

- Batches are a pure function of the step (`BatchSchedule`), and dropout is seeded per
  (step, rank, micro-batch), so a job resumed from a checkpoint ends bit-identical.
- The loss applies the LM head only where a token is predicted (labels != -100): the prompt's
  positions never reach the vocabulary projection. It is normalised by the global batch's target
  tokens, so micro-batching and the number of ranks do not change the gradient.
- Early stopping on a plateau the schedule cannot fake. The model is validated before its first
  step (the pretrained model's loss on the same examples) and every `eval_every` steps after. An
  evaluation is progress when it lowers the reference loss (the last progress, at first the
  pretrained one) by more than `min_delta` nats, or with `min_delta: auto` by more than twice the
  standard error of the per-example change (the validation set's own noise). After `patience`
  evaluations without progress the job stops on a "plateau", but only while the learning rate is
  at least half its peak (a decaying rate flattens any curve), never before `min_steps` (E's
  exposure; a control's `training.control_min_steps`); otherwise it stops at `max_steps`: "cap".
- The base model (and tokenizer) can be loaded once and reused by several jobs in a row: each
  job adds a fresh LoRA adapter and builds its own optimizer and engine, and `close` removes them.
  With training.method full, a job trains every weight of the base and `close` puts the base's own
  weights back (kept on the CPU), so the next job starts from the pretrained model too.

Imports neither Ray nor polars (a lent GPU box has neither); publishing imports polars lazily.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from runner.config import ExperimentConfig
from runner.training.batching import IGNORE, BatchSchedule, collate_training, encode_example, length_buckets, padding_fraction
from runner.training.memory import MemoryPlan, ModelShape, gpu_named, lora_targets, plan_job_memory

if TYPE_CHECKING:
    from runner.plan import TrainJob

GIB = 2**30
Encoded = tuple[list[int], list[int]]
STATE_FILE = "loop_state.json"
BEST_FILE = "best_state.pt"
LEGACY_BEST_FILE = "best_adapter.pt"
DS_TAG = "engine"  # not "latest": DeepSpeed writes a file of that name beside the tag folder


# --- the process group and the base model --------------------------------------------------------

def ensure_process_group(device: str) -> None:
    """A one-process group for DeepSpeed outside Ray (tests, benchmarks); Ray Train makes its own.

    An in-memory store: no port to pick, nothing for a child process to inherit and collide with."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    for key in ("RANK", "LOCAL_RANK"):
        os.environ.setdefault(key, "0")  # DeepSpeed's engine reads them
    os.environ.setdefault("WORLD_SIZE", "1")
    dist.init_process_group("nccl" if device == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1)


@dataclass
class Base:
    """The frozen base model (and its tokenizer) on one device, shared by the jobs of a worker."""

    model: torch.nn.Module
    device: str
    tokenizer: object | None = None

    @classmethod
    def load(cls, model_dir: str, device: str, dtype: torch.dtype) -> Base:
        from runner.models import load_base_model, load_tokenizer

        return cls(model=load_base_model(model_dir, device, dtype), device=device, tokenizer=load_tokenizer(model_dir))

    @property
    def shape(self) -> ModelShape:
        return ModelShape.from_hf_config(self.model.config.to_dict())


def encode_payload(tokenizer, data: dict, max_length: int) -> tuple[list[Encoded], list[Encoded], list[str] | None]:
    """Token ids and labels of a job's training and validation text, and each training example's task."""
    train = [encode_example(tokenizer, p, t, max_length) for p, t in zip(data["train_prompt"], data["train_target"])]
    val = [encode_example(tokenizer, p, t, max_length) for p, t in zip(data["val_prompt"], data["val_target"])]
    return train, val, data.get("train_task")


def _skip_shared_memory_all_reduce() -> None:
    """Keep DeepSpeed's CPU backend from JIT-compiling its shared-memory all-reduce (about a minute of C++
    per fresh machine, on a 2-core AVX2 host). Only its inference all-reduce uses that op; training reduces
    through torch.distributed (gloo) either way. DeepSpeed reads the probe's table, which is kept to be
    edited, before it builds an op."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


# --- the loss ----------------------------------------------------------------------------------------

def target_loss(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                num_items: float | None = None, per_example: bool = False) -> torch.Tensor:
    """Token cross-entropy of a causal LM, the LM head applied only at positions that predict a label.

    Equals HF's `model(..., labels=labels).loss` (mean over target tokens) when `num_items` is
    None; otherwise the sum over this batch's targets divided by `num_items`. `per_example`: each
    row's summed loss instead (validation's per-example losses, for the plateau's noise)."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = causal_lm.get_decoder()  # the stack under the LM head, whatever the family calls it
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    shifted = labels[:, 1:]
    rows, cols = (shifted != IGNORE).nonzero(as_tuple=True)
    logits = causal_lm.get_output_embeddings()(hidden[rows, cols]).float()
    if per_example:
        losses = F.cross_entropy(logits, shifted[rows, cols], reduction="none")
        return torch.zeros(labels.shape[0], dtype=losses.dtype, device=losses.device).index_add_(0, rows, losses)
    total = F.cross_entropy(logits, shifted[rows, cols], reduction="sum")
    return total / (num_items if num_items is not None else max(rows.numel(), 1))


class _TargetLoss(torch.nn.Module):
    """What DeepSpeed wraps: the peft model, called for its target-token loss."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, num_items=None, per_example=False):
        return target_loss(self.model, input_ids, attention_mask, labels, num_items, per_example)

    def state_dict(self, *args, **kwargs):
        """Only the trainable tensors (no frozen weights, no buffers): what a DeepSpeed checkpoint
        needs to resume.

        DeepSpeed drops frozen parameters by name, but a tied LM head (`lm_head` = `embed_tokens`)
        is listed once under the embedding's name, so the head survived: 113 MB of frozen weights
        in every SmolLM2 checkpoint (Llama-2 unties its head, so it was not affected)."""
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        keep = {prefix + name for name, p in self.named_parameters(remove_duplicate=False) if p.requires_grad}
        for name in [name for name in full if name not in keep]:
            del full[name]
        return full


# --- DeepSpeed -----------------------------------------------------------------------------------------

def resolve_precision(exp: ExperimentConfig, device: str) -> str:
    precision = exp.deepspeed.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    return precision


def deepspeed_config(exp: ExperimentConfig, memory: MemoryPlan, device: str) -> dict:
    """The engine's config, following the memory plan: micro-batch x accumulation x workers = batch."""
    if memory.micro_batch * memory.accumulation * memory.workers != memory.batch_size:
        raise ValueError(f"memory plan breaks the global batch: {memory.describe()} != {memory.batch_size}")
    precision = resolve_precision(exp, device)
    return {
        "train_batch_size": memory.batch_size,
        "train_micro_batch_size_per_gpu": memory.micro_batch,
        "gradient_accumulation_steps": memory.accumulation,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": exp.deepspeed.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        # The client AdamW avoids building DeepSpeed's fused ops, which CPUs lack.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def _checkpointing(model: torch.nn.Module, enable: bool) -> None:
    """Activation checkpointing on the decoder layers (non-reentrant: no input-grad hook needed)."""
    if enable:
        on = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x
        if on is not None:
            on(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if getattr(model, "_require_grads_hook", None) is not None:
            model.disable_input_require_grads()  # only the reentrant variant needs it
    else:
        on = getattr(model, "is_activation_checkpointing", None)
        if on is None:
            on = model.is_gradient_checkpointing
        if on:
            (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()


def _step_seed(seed: int, step: int, rank: int, micro: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank, micro]).generate_state(1)[0])


# --- one job ----------------------------------------------------------------------------------------------

PROGRESS_Z = 2.0  # min_delta auto: progress is a fall of more than this many standard errors


@dataclass
class LoopState:
    """Everything of a job's progress that a checkpoint must carry (JSON-serialisable)."""

    job: str
    step: int = 0
    best_val: float = float("inf")   # the lowest validation loss: its adapter is the one published
    plateau_ref: float = float("inf")  # the loss an evaluation must beat by min_delta to count as progress
    bad_evals: int = 0
    stopped: str | None = None       # "plateau" or "cap" once finished
    step_seconds: float = 0.0        # optimizer steps' wall time, summed over restarts
    eval_seconds: float = 0.0        # validation passes' wall time, summed over restarts
    wall_seconds: float = 0.0        # the job's wall time up to its last checkpoint, summed over restarts
    pretrained_val: float | None = None  # the validation loss before the first step
    # Per-example summed validation losses (nats) at the pretrained model, the reference and the best.
    pretrained_losses: list[float] | None = None
    ref_losses: list[float] | None = None
    best_losses: list[float] | None = None
    curve: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Model work: optimizer steps and validation passes."""
        return self.step_seconds + self.eval_seconds


class Trainer:
    """One training job on one rank: a fresh LoRA adapter on `base` (or, with training.method full, the
    base's own weights), its optimizer and engine. Everything it follows is the job's: its steps,
    batch, seed and evaluation cadence, and its experiment's method, LoRA, optimiser and precision."""

    def __init__(self, job: TrainJob, base: Base, train: list[Encoded], val: list[Encoded],
                 train_tasks: list[str] | None = None, *, rank: int = 0, world: int = 1,
                 memory: MemoryPlan | None = None, pad_id: int | None = None, started: float | None = None):
        self._started = started if started is not None else time.time()  # the job's start, for its wall time
        if not train:
            raise ValueError(f"job {job.id}: no training examples")
        self.exp, self.job, self.base, self.rank, self.world = job.config, job, base, rank, world
        if train_tasks is None and len(job.tasks) == 1:
            train_tasks = [job.tasks[0]] * len(train)  # a control: every example is its task
        self.train, self.val, self.train_tasks = train, val, train_tasks
        self.seed, self.max_steps, self.eval_every, self.batch_size = job.seed, job.max_steps, job.eval_every, job.batch_size
        self.min_steps = min(job.min_steps, self.max_steps)
        # E's exposure guarantee: no early stop before it has seen every task this often.
        self.min_examples = dict(job.min_examples)
        tok = base.tokenizer
        self.pad_id = pad_id if pad_id is not None else (tok.pad_token_id if tok is not None else 0)
        self.memory = memory or self._plan_memory()
        self.schedule = BatchSchedule([len(ids) for ids, _ in train], self.batch_size, self.seed,
                                      self.exp.training.length_window)
        self._train_targets = np.array([_targets(example) for example in train], dtype=np.int64)
        self._val_targets = np.array([_targets(example) for example in val], dtype=np.float64)
        self._train_lengths = self.schedule.lengths
        self.state = LoopState(job=job.id)
        self._wall_before = 0.0  # a resumed job's wall time before this attempt
        self.best_state: dict[str, torch.Tensor] | None = None
        self._pristine: dict[str, torch.Tensor] | None = None
        self._build()

    @property
    def full(self) -> bool:
        """Full fine-tuning: every weight trains, and the model is saved whole."""
        return self.exp.training.method == "full"

    # -- build --
    def _plan_memory(self) -> MemoryPlan:
        if self.base.device != "cuda":
            return plan_job_memory(self.exp, self.job, device="cpu")
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        return plan_job_memory(self.exp, self.job, props.total_memory / GIB, device="cuda", shape=self.base.shape,
                               gpu=gpu_named(props.name) or props.name)

    def _build(self) -> None:
        os.environ.setdefault("DS_ACCELERATOR", "cuda" if self.base.device == "cuda" else "cpu")
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
        import deepspeed
        from peft import LoraConfig, get_peft_model

        if self.base.device != "cuda":
            _skip_shared_memory_all_reduce()

        lora = self.exp.lora
        model = self.base.model
        model.config.use_cache = False
        _checkpointing(model, self.memory.checkpointing)
        torch.manual_seed(self.seed)  # the LoRA initialisation: the job's seed, the same on every rank
        if self.full:
            self._pristine = _cpu_copy(model.state_dict())
            for p in model.parameters():
                p.requires_grad_(True)
            self.model = model
        else:
            self.model = get_peft_model(model, LoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora_targets(self.exp, model.config.model_type), task_type="CAUSAL_LM"))
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.exp.training.lr, weight_decay=self.exp.training.weight_decay)
        self.engine, *_ = deepspeed.initialize(model=_TargetLoss(self.model), optimizer=optimizer,
                                               config=deepspeed_config(self.exp, self.memory, self.base.device))
        self.engine.train()

    # -- step --
    def learning_rate(self, step: int) -> float:
        """The schedule's rate at `step`: a pure function of the step, so a resumed job follows it exactly."""
        t = self.exp.training
        warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps else 1.0
        left = max(0.0, 1.0 - step / self.max_steps)
        decay = {"constant": 1.0, "linear": left, "cosine": 0.5 * (1.0 + math.cos(math.pi * (1.0 - left)))}
        return t.lr * warm * decay[t.lr_schedule]

    def train_step(self) -> float:
        """One optimizer step over the global batch of `state.step`; returns this rank's mean loss."""
        step, memory = self.state.step, self.memory
        for group in self.engine.optimizer.param_groups:
            group["lr"] = self.learning_rate(step)
        # Every rank knows the whole global batch, so the loss is normalised by its target tokens
        # (DeepSpeed divides by accumulation and averages over ranks: undo both).
        global_items = int(self._train_targets[self.schedule.indices(step)].sum())
        scale = memory.accumulation * self.world / max(global_items, 1)
        losses, micros = [], self.schedule.micro_batches(step, self.rank, self.world, memory.micro_batch)
        for micro, indices in enumerate(micros):
            batch = self._to_device(collate_training([self.train[i] for i in indices], self.pad_id))
            torch.manual_seed(_step_seed(self.seed, step, self.rank, micro))  # dropout: a function of the step
            loss = self.engine(**batch, num_items=1.0)  # the micro-batch's summed loss
            self.engine.backward(loss * scale)
            self.engine.step()
            losses.append(loss.detach())  # read once per step: no device sync per micro-batch
        self.state.step = step + 1
        mine = int(self._train_targets[[i for indices in micros for i in indices]].sum())
        return float(torch.stack(losses).double().sum()) / max(mine, 1)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.engine.device, non_blocking=True) for k, v in batch.items()}

    # -- validate --
    @torch.no_grad()
    def validate(self) -> np.ndarray:
        """Each validation example's summed target-token loss (nats), every rank scoring its share
        (length-bucketed) and the shares summed, so every rank holds all of them."""
        self.engine.eval()
        mine = list(range(self.rank, len(self.val), self.world))
        losses = torch.zeros(len(self.val), dtype=torch.float64, device=self.engine.device)
        for bucket in length_buckets([len(self.val[i][0]) for i in mine], max(self.memory.micro_batch, 1)):
            rows = [mine[i] for i in bucket]
            batch = self._to_device(collate_training([self.val[i] for i in rows], self.pad_id))
            losses[rows] = self.engine(**batch, per_example=True).double()
        if self.world > 1:
            torch.distributed.all_reduce(losses)  # on the engine's device: NCCL reduces only device tensors
        self.engine.train()
        return losses.cpu().numpy()

    def mean_loss(self, losses: np.ndarray) -> float:
        """The validation loss: nats per target token over the whole set."""
        return float(losses.sum() / max(self._val_targets.sum(), 1.0))

    def validation_padding(self) -> float:
        shard = self.val[self.rank::self.world]
        lengths = [len(ids) for ids, _ in shard]
        return padding_fraction(lengths, length_buckets(lengths, max(self.memory.micro_batch, 1)))

    def change_se(self, before: np.ndarray, after: np.ndarray) -> float:
        """Standard error of the fall in validation loss from `before` to `after` (per-example summed
        losses on the same examples), over the examples: the ratio estimator's, since the loss is a
        mean over tokens."""
        return ratio_se(np.asarray(before) - np.asarray(after), self._val_targets)

    # -- early stopping --
    @property
    def due(self) -> bool:
        """Whether the step just taken ends with an evaluation."""
        step = self.state.step
        return step > 0 and (step % self.eval_every == 0 or step >= self.max_steps)

    @property
    def finished(self) -> bool:
        return self.state.stopped is not None

    def validate_pretrained(self) -> dict:
        """The validation loss before the first step (a fresh adapter changes nothing, so this is the
        pretrained model's loss on the same examples): the first reference; returns the curve point."""
        s = self.state
        began = time.time()
        losses = self.validate()
        s.eval_seconds += time.time() - began
        s.pretrained_val = self.mean_loss(losses)
        s.pretrained_losses = s.ref_losses = losses.tolist()
        s.plateau_ref = s.pretrained_val
        point = {"step": 0, "train_loss": None, "val_loss": s.pretrained_val, "best_val_loss": None,
                 "lr": 0.0, "improvement": None, "threshold": None,
                 "val_se": ratio_se(losses, self._val_targets)}
        s.curve.append(point)
        return point

    def progress_threshold(self, before: np.ndarray, after: np.ndarray) -> float:
        """How far an evaluation must lower the reference loss to count as progress."""
        min_delta = self.exp.training.min_delta
        return PROGRESS_Z * self.change_se(before, after) if min_delta == "auto" else float(min_delta)

    def evaluate(self, train_loss: float) -> dict:
        """Validate, keep the best adapter, decide whether to stop; returns the curve point."""
        s, t = self.state, self.exp.training
        losses = self.validate()
        val = self.mean_loss(losses)
        if val < s.best_val:
            s.best_val, s.best_losses = val, losses.tolist()
            # A whole model's copy is kept only where it is saved and published (rank 0); an adapter is small.
            self.best_state = self.trained_state() if self.rank == 0 or not self.full else None
        improvement = s.plateau_ref - val
        # A checkpoint from before per-example losses were kept has no reference vector: plain min_delta.
        threshold = (self.progress_threshold(np.asarray(s.ref_losses), losses) if s.ref_losses is not None
                     else float(t.min_delta) if t.min_delta != "auto" else 0.0)
        if improvement > threshold:
            s.plateau_ref, s.ref_losses, s.bad_evals = val, losses.tolist(), 0
        else:
            s.bad_evals += 1
        lr = self.learning_rate(s.step - 1)  # the rate of the step just taken
        steady = lr >= 0.5 * t.lr  # a plateau found while the rate decays is the schedule's, not the model's
        if s.bad_evals >= t.patience and steady and s.step >= self.min_steps and self.exposure_met():
            s.stopped = "plateau"
        elif s.step >= self.max_steps:
            s.stopped = "cap"
        point = {"step": s.step, "train_loss": train_loss, "val_loss": val, "best_val_loss": s.best_val, "lr": lr,
                 "improvement": improvement, "threshold": threshold,
                 "val_se": ratio_se(losses, self._val_targets)}
        s.curve.append(point)
        return point

    def trained_state(self) -> dict[str, torch.Tensor]:
        """What this job changed, on the CPU: the adapter's tensors, or every weight (full fine-tuning)."""
        if self.full:
            return _cpu_copy(self.model.state_dict())
        from peft import get_peft_model_state_dict

        return _cpu_copy(get_peft_model_state_dict(self.model))

    def exposure_met(self) -> bool:
        """Whether every task of `min_examples` has been seen that often in the steps taken (exact:
        batches are a pure function of the step)."""
        if not self.min_examples or self.train_tasks is None:
            return True
        seen: dict[str, int] = {}
        for step in range(self.state.step):
            for i in self.schedule.indices(step):
                seen[self.train_tasks[i]] = seen.get(self.train_tasks[i], 0) + 1
        return all(seen.get(task, 0) >= n for task, n in self.min_examples.items())

    def run(self, on_eval=None) -> LoopState:
        """Validate the pretrained model, then train to the plateau or the cap; `on_eval(trainer, point)`
        after each evaluation.

        `state.step_seconds` and `state.eval_seconds` sum the steps' and the validation passes' wall
        time over restarts (checkpoints and setup excluded); each point's rates cover the steps since
        the previous evaluation."""
        if self.state.pretrained_val is None:
            self.validate_pretrained()
        first_step, tokens, stepping = self.state.step, 0, 0.0
        while not self.finished:
            began = time.time()
            loss = self.train_step()
            stepping += time.time() - began
            tokens += int(self._train_lengths[self.schedule.indices(self.state.step - 1)].sum())
            if not self.due:
                continue
            began = time.time()
            point = self.evaluate(loss)
            self.state.step_seconds += stepping
            self.state.eval_seconds += time.time() - began
            point |= {"seconds": self.state.seconds, "step_seconds": self.state.step_seconds,
                      "eval_seconds": self.state.eval_seconds,
                      "steps_per_s": (self.state.step - first_step) / stepping, "tokens_per_s": tokens / stepping}
            if on_eval is not None:
                on_eval(self, point)
            first_step, tokens, stepping = self.state.step, 0, 0.0
        return self.state

    def wall_seconds(self) -> float:
        """The job's wall time from its start (data encoding, engine, steps, validation, checkpoints),
        summed over restarts."""
        return self._wall_before + time.time() - self._started

    # -- checkpoints (DeepSpeed's, plus the loop state and the best adapter) --
    def save_checkpoint(self, folder: Path) -> None:
        """Every rank writes its engine shard; rank 0 adds the loop state and the best adapter."""
        folder = Path(folder)
        self.engine.save_checkpoint(str(folder), tag=DS_TAG, exclude_frozen_parameters=True)
        if self.rank == 0:
            self.state.wall_seconds = self.wall_seconds()
            (folder / STATE_FILE).write_text(json.dumps(self.state.__dict__))
            torch.save(self.best_state, folder / BEST_FILE)

    def load_checkpoint(self, folder: Path) -> bool:
        """Resume from `folder` if it is this job's; False (and nothing loaded) otherwise."""
        folder = Path(folder)
        if not (folder / STATE_FILE).is_file():
            return False
        saved = json.loads((folder / STATE_FILE).read_text())
        if saved.get("job") != self.job.id:
            return False
        self.engine.load_checkpoint(str(folder), tag=DS_TAG, load_module_strict=False)
        known = set(LoopState.__dataclass_fields__)
        self.state = LoopState(**{k: v for k, v in saved.items() if k in known})  # an older checkpoint's extras dropped
        self._wall_before = self.state.wall_seconds
        best = folder / BEST_FILE
        if not best.is_file() and (folder / LEGACY_BEST_FILE).is_file():
            best = folder / LEGACY_BEST_FILE  # a checkpoint written before full fine-tuning existed
        self.best_state = torch.load(best, weights_only=True) if self.rank == 0 or not self.full else None
        return True

    # -- results --
    def restore_best(self) -> None:
        if self.best_state is None:
            return
        if self.full:
            self.model.load_state_dict(self.best_state)
            return
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, self.best_state)

    def summary(self) -> dict:
        """The done marker's info: exact counts, since batches are a pure function of the step."""
        s = self.state
        seen = self.schedule.stats(s.step, self.memory.micro_batch, self.train_tasks)
        gain_se = (self.change_se(s.pretrained_losses, s.best_losses)
                   if s.pretrained_losses is not None and s.best_losses is not None else None)
        last = s.curve[-1] if s.curve else {}
        return {"steps": s.step, "examples_seen": seen["examples_seen"], "examples_by_task": seen["examples_by_task"],
                "tokens_seen": seen["tokens_seen"], "best_val_loss": s.best_val, "converged": s.stopped == "plateau",
                "stopped": s.stopped, "seed": self.seed, "method": self.exp.training.method,
                "pretrained_val_loss": s.pretrained_val, "val_gain_se": gain_se, "val_examples": len(self.val),
                "peak_lr": self.exp.training.lr, "stop_lr": last.get("lr"),
                "step_seconds": round(s.step_seconds, 3), "eval_seconds": round(s.eval_seconds, 3),
                "lora_r": None if self.full else self.exp.lora.r,
                "padding_fraction": round(seen["padding_fraction"], 4),
                "val_padding_fraction": round(self.validation_padding(), 4),
                "seconds": round(self.wall_seconds(), 3), "memory_plan": self.memory.describe()}

    def close(self) -> None:
        """Remove this job's adapter (or its weights) and engine from the base, so the next job starts clean."""
        self.engine.destroy()
        if self.full:
            self.model.load_state_dict(self._pristine)  # the pretrained weights again
            self._pristine = None
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.base.model = self.model
        else:
            self.base.model = self.model.unload()  # the original modules, without LoRA layers
        if hasattr(self.base.model, "peft_config"):
            del self.base.model.peft_config
        _checkpointing(self.base.model, False)
        self.engine = self.model = self.best_state = None
        if self.base.device == "cuda":
            torch.cuda.empty_cache()


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def ratio_se(values: np.ndarray, tokens: np.ndarray) -> float:
    """Standard error over the examples of sum(values) / sum(tokens), the ratio estimator's: with values
    the per-example summed losses, the validation loss's own; with their changes between two
    evaluations on the same examples, the change's."""
    values, tokens = np.asarray(values, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
    n, total = len(values), tokens.sum()
    if n < 2 or total <= 0:
        return float("nan")
    residual = values - (values.sum() / total) * tokens
    return float(np.sqrt(n / (n - 1) * np.sum(residual ** 2)) / total)


def _targets(example: Encoded) -> int:
    """Labels a causal LM predicts: every label but the first position's (nothing predicts it)."""
    return sum(1 for label in example[1][1:] if label != IGNORE)


def publish(trainer: Trainer, out_dir: Path) -> dict:
    """Rank 0: the best adapter (standard peft layout), or with full fine-tuning the best model (config.json,
    safetensors and the tokenizer: a folder `from_pretrained` loads), curve.parquet and training.json in
    one atomic rename, then the done marker. Returns the marker's info."""
    import polars as pl

    from runner.artifacts.store import atomic_dir, atomic_write_parquet, mark_done

    trainer.restore_best()
    info = trainer.summary()
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        trainer.model.save_pretrained(tmp)
        if trainer.full and trainer.base.tokenizer is not None:
            trainer.base.tokenizer.save_pretrained(tmp)
        atomic_write_parquet(pl.DataFrame(trainer.state.curve), tmp / "curve.parquet")
        (tmp / "training.json").write_text(json.dumps(info, indent=2))
    # The job's wall time runs to its published adapter; its start and end place it on the stage's timeline.
    finished = time.time()
    info |= {"seconds": round(trainer.wall_seconds(), 3), "started_at": round(trainer._started, 3),
             "finished_at": round(finished, 3)}
    mark_done(out_dir, trainer.job.key, **info)
    return info
