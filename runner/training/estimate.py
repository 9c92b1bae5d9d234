"""GPU-hour and memory estimates per training job for `--dry-run`, stated with their assumptions.

Upper bound: every job runs to max_steps with every sequence at max_length (early stopping and
shorter examples only lower it). Rates are measured, not assumed: on one H200, the project's
trainer reached 58.8% MFU at the paper's setting (14,954 tokens/s, micro-batch 16 x 1024 tokens),
counting 6N FLOPs per trained token (N = the transformer blocks' parameters; LoRA still runs the
forward and both backward matmuls through the frozen weights, so 6N is what the measurement
supports). Each job's MFU is the one measured at its memory plan's micro-batch and checkpointing
(runner.training.memory.CALIBRATION); other GPUs are scaled by their dense bf16 peak (runner.training.memory.GPUS),
which assumes they reach the H200's MFU. A forward-only pass (extraction, evaluation) costs 2N.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.config import ExperimentConfig
from runner.plan import MULTITASK, Plan
from runner.training.memory import (
    CALIBRATION,
    GPUS,
    MemoryPlan,
    ModelShape,
    device_memory_hint,
    plan_job_memory,
    predicted_tokens_per_s,
    shape_of,
)

# The paper's setting on the H200, for the dry run's one-line summary (kept for runner.dryrun).
MFU = CALIBRATION[False][16][1]


@dataclass(frozen=True)
class JobEstimate:
    job: str
    role: str
    gpu: str
    workers: int
    memory: MemoryPlan
    tokens: float           # trained tokens, upper bound (max_steps x batch x max_length)
    tokens_per_s: float     # per GPU, predicted
    hours: float            # wall-clock
    gpu_hours: float

    def describe(self) -> str:
        return (f"{self.job}: {self.workers} x {self.gpu}, <= {self.hours:,.1f} h ({self.gpu_hours:,.0f} GPU-h), "
                f"{self.memory.describe()}")


def _shape(config: ExperimentConfig) -> ModelShape | None:
    try:
        return shape_of(config)
    except ValueError:  # ConfigError: unknown offline
        return None


def job_estimates(plan: Plan, gpu: str | None = None) -> list[JobEstimate] | None:
    """One estimate per training job on `gpu` (default: resources.gpu_type, else runner.training.memory.DEFAULT_GPU);
    None when the model's shape is unknown offline. A job that does not fit has memory.fits False."""
    cfg = plan.config
    shape = _shape(cfg)
    if shape is None:
        return None
    memory_gib, name = (GPUS[gpu].memory_gib, gpu) if gpu else device_memory_hint(cfg)
    peak = GPUS[name].bf16_tflops if name in GPUS else GPUS["A100-80GB"].bf16_tflops
    out = []
    for job in plan.jobs:
        memory = plan_job_memory(cfg, job, memory_gib, device="cuda", shape=shape, gpu=name, strict=False)
        tokens = float(job.max_steps * job.batch_size * cfg.training.max_length)
        rate = predicted_tokens_per_s(memory, shape, peak)
        hours = tokens / (rate * job.workers) / 3600
        out.append(JobEstimate(job=job.id, role=job.role, gpu=name, workers=job.workers, memory=memory,
                               tokens=tokens, tokens_per_s=rate, hours=hours, gpu_hours=hours * job.workers))
    return out


def totals(estimates: list[JobEstimate]) -> dict[str, float]:
    """GPU-hours by role, the total, and the longest job's wall-clock hours."""
    out = {"multitask": 0.0, "controls": 0.0}
    for e in estimates:
        out["multitask" if e.role == MULTITASK else "controls"] += e.gpu_hours
    out["total"] = out["multitask"] + out["controls"]
    out["longest job hours"] = max((e.hours for e in estimates), default=0.0)
    return out


def forward_gpu_hours(plan: Plan, gpu: str | None = None) -> float | None:
    """Extraction and evaluation: each probe and test example through pretrained, E and its control."""
    cfg = plan.config
    shape = _shape(cfg)
    if shape is None:
        return None
    name = gpu or device_memory_hint(cfg)[1]
    peak = GPUS[name].bf16_tflops if name in GPUS else GPUS["A100-80GB"].bf16_tflops
    forwards = len(plan.tasks) * 3 * (cfg.extraction.probe_size + cfg.tasks.test_size)
    rate = MFU * peak * 1e12 / (2 * shape.block_params)
    return forwards * cfg.extraction.max_length / rate / 3600


def gpu_hours(plan: Plan) -> dict[str, float] | None:
    """GPU-hours by phase on an A100-80GB (what runner.dryrun's summary line states), or None when the
    model's shape is unknown offline. New callers: job_estimates() and totals()."""
    estimates = job_estimates(plan, gpu="A100-80GB")
    if estimates is None:
        return None
    hours = {k: v for k, v in totals(estimates).items() if k in ("multitask", "controls")}
    hours["extraction and evaluation"] = forward_gpu_hours(plan, gpu="A100-80GB")
    hours["total"] = sum(hours.values())
    return hours
