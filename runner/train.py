"""The `train` stage: E and every control C_t as Ray Train jobs, run side by side.

Each job is one `TorchTrainer` launched from a Ray Tune function trainable (the Ray 2.60 way to
run many Train jobs at once; `Tuner(trainer)` is deprecated). The trial itself is only a driver,
so it asks for no CPU; the trainer's workers hold the real resources, and Tune's concurrency
limit keeps no more drivers in flight than the cluster can feed.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import ray
from ray import tune
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from runner import metrics
from runner.config import stable_hash
from runner.data import training_payload
from runner.plan import Plan, TrainJob, TrainRun, group_runs
from runner.progress import TuneProgress
from runner.store import is_done
from runner.train_worker import train_loop_per_worker

log = logging.getLogger("layerwise.train")


class TrainingFailed(RuntimeError):
    pass


def pending_jobs(plan: Plan) -> list[TrainJob]:
    return [job for job in plan.jobs if not is_done(Path(job.out_dir), job.key)]


def max_concurrent(plan: Plan, runs: list[TrainRun]) -> int:
    """The configured limit, or as many of the smallest runs as the cluster's resources hold."""
    limit = plan.config.resources.max_concurrent_jobs
    if limit:
        return limit
    total = ray.cluster_resources()
    smallest = min(runs, key=lambda r: r.workers)
    fits = [total.get("CPU", 1) / (smallest.workers * smallest.cpus_per_worker)]
    if smallest.gpus_per_worker:
        fits.append(total.get("GPU", 0) / (smallest.workers * smallest.gpus_per_worker))
    return max(1, math.floor(min(fits)))


def _run_trainer(trial_config: dict, data_refs: dict, experiment: dict, model_dir: str, storage: str,
                 max_failures: int) -> None:
    """Tune trial: drive one TorchTrainer (one run of one or more models) to the end."""
    run = trial_config["run"]
    on_gpu = run["gpus_per_worker"] > 0
    resources = {"CPU": run["cpus_per_worker"], **({"GPU": run["gpus_per_worker"]} if on_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": experiment, "run": run, "model_dir": model_dir,
                           "data_refs": {job["id"]: data_refs[job["id"]] for job in run["jobs"]}},
        scaling_config=ScalingConfig(num_workers=run["workers"], use_gpu=on_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if on_gpu else "gloo"),
        run_config=RunConfig(name=f"{run['id']}-{stable_hash([j['key'] for j in run['jobs']])}",
                             storage_path=storage, failure_config=FailureConfig(max_failures=max_failures)),
    )
    result = trainer.fit()
    for job in run["jobs"]:
        metrics.record_job_done(job["role"])
    final = dict(result.metrics or {})
    tune.report({"best_val_loss": final.get("best_val_loss", float("nan")), "step": final.get("step", 0)})


def run_training(plan: Plan, model_dir: str, splits: dict, jobs: list[TrainJob] | None = None) -> list[TrainJob]:
    """Train every unfinished model of the plan; return the models that were trained."""
    jobs = pending_jobs(plan) if jobs is None else jobs
    if not jobs:
        log.info("train: all %d models already trained, skipping", len(plan.jobs))
        return []
    res = plan.config.resources
    storage = res.storage_path or str(plan.out / "ray_storage")
    runs = group_runs(jobs, res.controls_per_run)
    data_refs = {job.id: ray.put(training_payload(plan.config, job, splits)) for job in jobs}
    trainable = tune.with_resources(
        tune.with_parameters(_run_trainer, data_refs=data_refs, experiment=plan.config.model_dump(mode="json"),
                             model_dir=model_dir, storage=storage, max_failures=res.max_failures),
        # The trial only drives its trainer; the trainer's workers hold the real resources.
        {"CPU": 0, "memory": 1})
    limit = max_concurrent(plan, runs)
    log.info("train: %d models in %d Ray Train runs, up to %d at once: %s", len(jobs), len(runs), limit,
             ", ".join(r.id for r in runs))
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search([r.as_dict() for r in runs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=limit),
        run_config=tune.RunConfig(name=f"train-{plan.extract_key}", storage_path=storage, verbose=0,
                                  callbacks=[TuneProgress(len(runs), "train")]),
    )
    results = tuner.fit()
    failed = [r for r in results if r.error]
    if failed:
        first = failed[0]
        raise TrainingFailed(f"train: {len(failed)} of {len(runs)} runs failed; first: "
                             f"{first.config['run']['id']}: {str(first.error).strip().splitlines()[-1]}")
    return jobs
