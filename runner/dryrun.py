"""`--dry-run`: every job with its resources and artifact path, without starting Ray."""

from __future__ import annotations

from pathlib import Path

from runner.estimate import MFU, PEAK_TFLOPS, gpu_hours
from runner.store import is_done


def print_plan(exp, stages: tuple[str, ...]) -> None:
    plan, cfg = exp.plan, exp.config
    res = cfg.resources
    print(f"experiment {cfg.name} (config {cfg.digest()}) -> {plan.out}")
    print(f"model {cfg.model.name}; {len(plan.tasks)} tasks in "
          f"{len({t.cluster for t in plan.tasks})} clusters; stages: {', '.join(stages)}")
    if "train" in stages:
        print(f"train: {len(plan.jobs)} jobs (1 multi-task + {len(plan.jobs) - 1} controls), "
              f"up to {res.max_concurrent_jobs or 'as many as fit'} at once")
        for job in plan.jobs:
            state = "done" if is_done(Path(job.out_dir), job.key) else "todo"
            gpus = f" x {job.gpus_per_worker} GPU" if job.gpus_per_worker else ""
            print(f"  [{state}] {job.id:<40} {job.workers} worker(s) x {job.cpus_per_worker} CPU{gpus}, "
                  f"<= {job.max_steps} steps -> {job.out_dir}")
    if "extract" in stages:
        print(f"extract: {len(plan.tasks)} x {cfg.extraction.probe_size} probes through pretrained, "
              f"multitask and each control on {res.extract_actors} actor(s) -> {plan.activations_dir}")
    if "analyze" in stages:
        print(f"analyze: {len(plan.tasks)} remote tasks, {cfg.analysis.kernel} CKA -> {plan.out / 'cka.parquet'}")
    if "report" in stages:
        print(f"report: -> {plan.out / 'report.html'}")
    if res.gpus_per_worker:
        hours = gpu_hours(plan)
        if hours is None:
            print(f"GPU-hours: unknown (add {cfg.model.name!r} to runner.estimate.KNOWN_PARAMS)")
        else:
            parts = ", ".join(f"{name} {value:,.0f}" for name, value in hours.items())
            print(f"GPU-hours, upper bound (every job to max_steps at max_length; A100 bf16 at "
                  f"{MFU:.0%} of {PEAK_TFLOPS:.0f} TFLOP/s): {parts}")
