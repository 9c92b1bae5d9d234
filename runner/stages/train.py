"""The `train` stage: E, every control C_t and the noise-floor controls as Ray Train runs, side by side.

The launch lives in runner.training.launch. When the runs are done,
<out>/training.parquet records every model: steps, examples seen, best validation loss, and
whether it converged (stopped on a plateau) or hit its cap.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import polars as pl

from analysis.roles import CONTROL, MULTITASK, TRAINING
from runner.artifacts.store import atomic_write_parquet, is_done
from runner.plan import Plan, role_policy
from runner.training.launch import pending_jobs, run_training, slot_use, training_frame

log = logging.getLogger("layerwise.train")


def current(exp) -> bool:
    return not pending_jobs(exp.plan)


def progress(exps) -> str:
    jobs = sum(len(exp.plan.jobs) for exp in exps)
    left = sum(len(pending_jobs(exp.plan)) for exp in exps)
    return f"{jobs - left} of {jobs} models trained"


def run_together(exps) -> None:
    """Every experiment's models in one Tune run (a sweep's cells side by side, so the cluster stays
    full); each experiment's `run` then finds them trained and writes its training.parquet."""
    run_training([(exp.plan, exp.splits, exp.model_dir) for exp in exps])


def preflight(exp) -> None:
    """Every GPU job's memory plan must fit before anything launches."""
    from runner.training.memory import plan_job_memory

    if exp.config.resources.gpus_per_worker:
        for job in exp.plan.jobs:
            plan_job_memory(exp.config, job, None)  # raises a one-line ConfigError when it cannot fit


def describe(exp) -> list[str]:
    plan, cfg = exp.plan, exp.config
    res = cfg.resources
    e = "1 multi-task" if plan.multitask else "no multi-task (training.multitask: false)"
    lines = [f"train: {len(plan.jobs)} models ({e}, {sum(j.role == CONTROL for j in plan.jobs) - _twins(plan)} "
             f"controls, {_twins(plan)} noise-floor controls with seeds {cfg.baseline.seeds}), "
             f"up to {res.max_concurrent_jobs or 'as many as fit'} runs at once"]
    for job in plan.jobs:
        state = "done" if is_done(Path(job.out_dir), job.key) else "todo"
        gpus = f" x {job.gpus_per_worker} GPU" if job.gpus_per_worker else ""
        steps = f"{job.min_steps}-{job.max_steps}" if job.min_steps else f"<= {job.max_steps}"
        lines.append(f"  [{state}] {job.id:<34} {job.workers} worker(s) x {job.cpus_per_worker} CPU{gpus}, "
                     f"batch {job.batch_size}, {steps} steps, seed {job.seed} -> {job.out_dir}")
    if plan.exposure:
        worst = min(plan.exposure, key=lambda e: e.multitask_min / max(e.control_max, 1))
        e_job, control = plan.job(MULTITASK), role_policy(cfg, CONTROL)
        lines.append(f"  exposure: E does not stop before it has seen every seen task as often as its control may "
                     f"({control.max_steps} x {control.batch_size} = {worst.control_max} examples): about "
                     f"{e_job.min_steps} steps expected, cap {e_job.max_steps}; least-seen task {worst.task} "
                     f"({worst.rate:.1%} of the mixture)")
        for e in plan.exposure:
            lines.append(f"    {e.task:<32} share {e.rate:6.1%}  E ~{e.multitask_min:6d} by step {e_job.min_steps}, "
                         f"required {e.control_max:6d}")
    for model in exp.externals:  # loaded by extract and evaluate, never trained
        revision = f" @ {model.revision}" if model.revision else ""
        lines.append(f"  [load] {model.label:<34} published {model.kind} {model.name}{revision}, not trained")
    return lines


def _twins(plan: Plan) -> int:
    return sum(j.role == CONTROL and j.seed != plan.config.training.seed for j in plan.jobs)


def run(exp) -> None:
    started = time.time()
    trained = run_training([(exp.plan, exp.splits, exp.model_dir)])
    frame = training_frame(exp.plan, exp.externals)
    atomic_write_parquet(frame, exp.plan.out / f"{TRAINING}.parquet")
    if trained:
        log.info("train: finished %d models", len(trained))
        slots = exp.config.resources.max_concurrent_jobs
        if slots:
            use = slot_use(frame.filter(pl.col("model").is_in([j.id for j in trained])), time.time() - started, slots)
            log.info("train: %s", use.describe())
    stuck = frame.filter(pl.col("trained") & ~pl.col("converged").fill_null(False))
    if stuck.height:
        exp.notes.append(f"{stuck.height} of {len(exp.plan.jobs)} models stopped at their step cap without a plateau "
                         f"(not converged): {', '.join(stuck['model'].to_list())}; see training.parquet")
