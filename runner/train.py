"""The `train` stage: E and every control C_t as Ray Train jobs, run side by side.

Each job is one `TorchTrainer` launched from a Ray Tune function trainable (the Ray 2.60 way to
run many Train jobs at once; `Tuner(trainer)` is deprecated). The trial itself is only a driver,
so it asks for no CPU; the trainer's workers hold the real resources, and Tune's concurrency
limit keeps no more drivers in flight than the cluster can feed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import ray
from ray import tune
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from runner import metrics
from runner.config import ExperimentConfig, stable_hash
from runner.data import training_payload
from runner.plan import Plan, TrainJob, TrainRun, group_runs
from runner.progress import TuneProgress
from runner.store import SUCCESS, is_done
from runner.train_worker import train_loop_per_worker

log = logging.getLogger("layerwise.train")


class TrainingFailed(RuntimeError):
    pass


def pending_jobs(plan: Plan) -> list[TrainJob]:
    return [job for job in plan.jobs if not is_done(Path(job.out_dir), job.key)]


def max_concurrent(config: ExperimentConfig, runs: list[TrainRun]) -> int:
    """The configured limit, or as many of the smallest runs as the cluster's resources hold."""
    limit = config.resources.max_concurrent_jobs
    if limit:
        return limit
    total = ray.cluster_resources()
    smallest = min(runs, key=lambda r: r.workers)
    fits = [total.get("CPU", 1) / (smallest.workers * smallest.cpus_per_worker)]
    if smallest.gpus_per_worker:
        fits.append(total.get("GPU", 0) / (smallest.workers * smallest.gpus_per_worker))
    return max(1, math.floor(min(fits)))


def _run_trainer(trial_config: dict, data_refs: dict, model_dir: str, storage: str, max_failures: int) -> None:
    """Tune trial: drive one TorchTrainer (one run of one or more models) to the end."""
    run = trial_config["run"]
    on_gpu = run["gpus_per_worker"] > 0
    resources = {"CPU": run["cpus_per_worker"], **({"GPU": run["gpus_per_worker"]} if on_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": run, "model_dir": model_dir,
                           "data_refs": {job["key"]: data_refs[job["key"]] for job in run["jobs"]}},
        # On GPUs, all of a run's workers share one node (E lands on the 4-GPU node, never on spot
        # 1-GPU nodes, and its gradients all-reduce over NVLink, not the network).
        scaling_config=ScalingConfig(num_workers=run["workers"], use_gpu=on_gpu, resources_per_worker=resources,
                                     placement_strategy="STRICT_PACK" if on_gpu else "PACK"),
        torch_config=TorchConfig(backend="nccl" if on_gpu else "gloo"),
        # Named by content: a re-run of the same unfinished models resumes this run's checkpoints.
        run_config=RunConfig(name=f"{run['id']}-{stable_hash([j['key'] for j in run['jobs']])}",
                             storage_path=storage, failure_config=FailureConfig(max_failures=max_failures)),
    )
    trainer.fit()
    # Each finished model's marker holds its best validation loss (the last report of a run
    # carries no checkpoint, so Ray's result metrics may be empty).
    losses = [json.loads((Path(job["out_dir"]) / SUCCESS).read_text()).get("best_val_loss", float("nan"))
              for job in run["jobs"]]
    for job in run["jobs"]:
        metrics.record_job_done(job["role"])
    tune.report({"best_val_loss": sum(losses) / len(losses), "models": len(losses)})


def run_training(cells: list[tuple[Plan, dict]], model_dir: str) -> list[TrainJob]:
    """Train every unfinished model of one or more plans (a sweep's cells) in one Tune run.

    `cells` pairs each plan with its task splits. Returns the models that were trained."""
    runs, data_refs, trained = [], {}, []
    for plan, splits in cells:
        jobs = pending_jobs(plan)
        for run in group_runs(jobs, plan.config.resources.controls_per_run):
            runs.append(run.as_dict() | {"experiment": plan.config.model_dump(mode="json"),
                                         "id": f"{plan.cell}{run.id}"})
        data_refs |= {job.key: ray.put(training_payload(plan.config, job, splits)) for job in jobs}
        trained += jobs
    if not runs:
        log.info("train: all %d models already trained, skipping", sum(len(p.jobs) for p, _ in cells))
        return []
    config = cells[0][0].config
    res = config.resources
    storage = res.storage_path or str(cells[0][0].out / "ray_storage")
    trainable = tune.with_resources(
        tune.with_parameters(_run_trainer, data_refs=data_refs, model_dir=model_dir, storage=storage,
                             max_failures=res.max_failures),
        # The trial only drives its trainer; the trainer's workers hold the real resources.
        {"CPU": 0, "memory": 1})
    limit = max_concurrent(config, [TrainRun(r["id"], (), r["workers"], r["cpus_per_worker"], r["gpus_per_worker"])
                                    for r in runs])
    log.info("train: %d models in %d Ray Train runs, up to %d at once: %s", len(trained), len(runs), limit,
             ", ".join(r["id"] for r in runs))
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search(runs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=limit),
        run_config=tune.RunConfig(name=f"train-{stable_hash([r['id'] for r in runs])}", storage_path=storage,
                                  verbose=0, callbacks=[TuneProgress(len(runs), "train")]),
    )
    results = tuner.fit()
    failed = [r for r in results if r.error]
    if failed:
        first = failed[0]
        raise TrainingFailed(f"train: {len(failed)} of {len(runs)} runs failed; first: "
                             f"{first.config['run']['id']}: {str(first.error).strip().splitlines()[-1]}")
    return trained
