"""The `train` stage: E and every control C_t as Ray Train jobs, run side by side.

Each job is one `TorchTrainer` launched from a Ray Tune function trainable (the Ray 2.60 way to
run many Train jobs at once; `Tuner(trainer)` is deprecated). The trial itself is only a driver,
so it asks for no CPU; the trainer's workers hold the real resources, and Tune's concurrency
limit keeps no more drivers in flight than the cluster can feed.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import ray
from ray import tune
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from runner import metrics
from runner.config import ExperimentConfig
from runner.data import training_payload
from runner.plan import Plan, TrainJob
from runner.progress import TuneProgress
from runner.store import is_done, mark_done
from runner.train_worker import train_loop_per_worker

log = logging.getLogger("layerwise.train")


class TrainingFailed(RuntimeError):
    pass


def pending_jobs(plan: Plan) -> list[TrainJob]:
    return [job for job in plan.jobs if not is_done(Path(job.out_dir), job.key)]


def max_concurrent(plan: Plan, jobs: list[TrainJob]) -> int:
    """The configured limit, or as many control-sized jobs as the cluster's resources hold."""
    limit = plan.config.resources.max_concurrent_jobs
    if limit:
        return limit
    total = ray.cluster_resources()
    per_job = min(jobs, key=lambda j: j.workers)
    fits = [total.get("CPU", 1) / (per_job.workers * per_job.cpus_per_worker)]
    if per_job.gpus_per_worker:
        fits.append(total.get("GPU", 0) / (per_job.workers * per_job.gpus_per_worker))
    return max(1, math.floor(min(fits)))


def _run_job(trial_config: dict, payload_refs: dict, experiment: dict, model_dir: str, storage: str,
             max_failures: int) -> None:
    """Tune trial: drive one TorchTrainer to the end and mark its adapter finished."""
    job = trial_config["job"]
    exp = ExperimentConfig.model_validate(experiment)
    on_gpu = job["gpus_per_worker"] > 0
    resources = {"CPU": job["cpus_per_worker"], **({"GPU": job["gpus_per_worker"]} if on_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": experiment, "job": job, "model_dir": model_dir,
                           "data_ref": payload_refs[job["id"]], "out_dir": job["out_dir"]},
        scaling_config=ScalingConfig(num_workers=job["workers"], use_gpu=on_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if on_gpu else "gloo"),
        run_config=RunConfig(name=f"{job['id']}-{job['key']}", storage_path=storage,
                             failure_config=FailureConfig(max_failures=max_failures)),
    )
    started = time.time()
    result = trainer.fit()
    metrics.record_job_done(job["role"])
    final = dict(result.metrics or {})
    mark_done(Path(job["out_dir"]), job["key"], seconds=round(time.time() - started, 2),
              lora_r=exp.lora.r, seed=exp.training.seed, **{k: final.get(k) for k in ("step", "best_val_loss")})
    tune.report({"best_val_loss": final.get("best_val_loss", float("nan")), "step": final.get("step", 0)})


def run_training(plan: Plan, model_dir: str, splits: dict, jobs: list[TrainJob] | None = None) -> list[TrainJob]:
    """Train every unfinished job of the plan; return the jobs that ran."""
    jobs = pending_jobs(plan) if jobs is None else jobs
    if not jobs:
        log.info("train: all %d models already trained, skipping", len(plan.jobs))
        return []
    storage = plan.config.resources.storage_path or str(plan.out / "ray_storage")
    payload_refs = {job.id: ray.put(training_payload(plan.config, job, splits)) for job in jobs}
    trainable = tune.with_resources(
        tune.with_parameters(_run_job, payload_refs=payload_refs, experiment=plan.config.model_dump(mode="json"),
                             model_dir=model_dir, storage=storage,
                             max_failures=plan.config.resources.max_failures),
        {"CPU": 0, "memory": 1})
    limit = max_concurrent(plan, jobs)
    log.info("train: %d jobs (%s), up to %d at once", len(jobs), ", ".join(j.id for j in jobs), limit)
    tuner = tune.Tuner(
        trainable,
        # The longest job (E) goes first so it never waits behind the controls.
        param_space={"job": tune.grid_search([j.as_dict() for j in jobs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=limit),
        run_config=tune.RunConfig(name=f"train-{plan.extract_key}", storage_path=storage, verbose=0,
                                  callbacks=[TuneProgress(len(jobs), "train")]),
    )
    results = tuner.fit()
    failed = [r for r in results if r.error]
    if failed:
        first = failed[0]
        raise TrainingFailed(f"train: {len(failed)} of {len(jobs)} jobs failed; first: "
                             f"{first.config['job']['id']}: {str(first.error).strip().splitlines()[-1]}")
    return jobs
