"""Launch the training jobs of one or more plans as Ray Train runs, side by side.

Each run is one `TorchTrainer` launched from a Ray Tune function trainable (the Ray 2.60 way to
run many Train jobs at once; `Tuner(trainer)` is deprecated). The trial itself is only a driver,
so it asks for no CPU; the trainer's workers hold the real resources, and Tune's concurrency
limit keeps no more drivers in flight than the cluster can feed. `training_frame` reads back what
every model recorded: steps, examples seen, best validation loss, and whether it converged.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from analysis.roles import CONTROL, EXTERNAL, MULTITASK
from runner.artifacts.store import SUCCESS, is_done
from runner.config import ExperimentConfig, stable_hash
from runner.plan import Plan, TrainJob, TrainRun, group_runs

if TYPE_CHECKING:
    from runner.models.external import ExternalModel

log = logging.getLogger("layerwise.train")


class TrainingFailed(RuntimeError):
    pass


def pending_jobs(plan: Plan) -> list[TrainJob]:
    return [job for job in plan.jobs if not is_done(Path(job.out_dir), job.key)]


def max_concurrent(config: ExperimentConfig, runs: list[TrainRun]) -> int:
    """The configured limit, or as many of the smallest runs as the cluster's resources hold."""
    import ray

    limit = config.resources.max_concurrent_jobs
    if limit:
        return limit
    total = ray.cluster_resources()
    smallest = min(runs, key=lambda r: r.workers)
    fits = [total.get("CPU", 1) / (smallest.workers * smallest.cpus_per_worker)]
    if smallest.gpus_per_worker:
        fits.append(total.get("GPU", 0) / (smallest.workers * smallest.gpus_per_worker))
    return max(1, math.floor(min(fits)))


def _run_trainer(trial_config: dict, runs: dict[str, TrainRun], data_refs: dict, storage: str, max_failures: int,
                 queue=None) -> None:
    """Tune trial: drive one TorchTrainer (one run of one or more models, or a lane that drains `queue`) to the end.

    The trial's config names its run; the run itself (its jobs, their config) comes pickled with `runs`."""
    import ray
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from runner.training.worker import train_loop_per_worker

    run = runs[trial_config["run"]["id"]]
    on_gpu = run.gpus_per_worker > 0
    resources = {"CPU": run.cpus_per_worker, **({"GPU": run.gpus_per_worker} if on_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": run, "queue": queue if run.lane else None,
                           "data_refs": {key: data_refs[key] for key in run.keys}},
        # On GPUs, all of a run's workers share one node (E lands on the 4-GPU node, never on spot
        # 1-GPU nodes, and its gradients all-reduce over NVLink, not the network).
        scaling_config=ScalingConfig(num_workers=run.workers, use_gpu=on_gpu, resources_per_worker=resources,
                                     placement_strategy="STRICT_PACK" if on_gpu else "PACK"),
        torch_config=TorchConfig(backend="nccl" if on_gpu else "gloo"),
        # Named by content: a re-run of the same unfinished models resumes this run's checkpoints.
        run_config=RunConfig(name=f"{run.id}-{stable_hash(run.keys)}",
                             storage_path=storage, failure_config=FailureConfig(max_failures=max_failures),
                             # Resuming needs only the latest checkpoint; keeping every one filled
                             # 7.6 GB per demo run.
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    )
    trainer.fit()
    # One report per finished model, from its done marker (the driver prints one line each).
    taken = set(ray.get(queue.taken.remote(run.id))) if run.lane else None
    for job in run.jobs if taken is None else [j for j in run.queued if j.id in taken]:
        info = json.loads((Path(job.out_dir) / SUCCESS).read_text())
        tune.report({"model": job.id, "role": job.role, "steps": info.get("steps"),
                     "best_val_loss": info.get("best_val_loss"), "converged": info.get("converged")})


def run_training(cells: list[tuple[Plan, dict, str]]) -> list[TrainJob]:
    """Train every unfinished model of one or more plans (a sweep's cells) in one Tune run.

    `cells` holds each plan with its task splits and its base model's local folder (a sweep over
    model.name trains cells on different bases side by side). Returns the models that were trained."""
    import ray
    from ray import tune

    from runner.data import training_payload
    from runner.ops.console import TuneProgress
    from runner.ops.errors import one_line

    runs: list[TrainRun] = []
    data_refs, trained, payloads = {}, [], {}
    shared: dict[tuple, list[tuple[Plan, list[TrainJob], str]]] = {}  # lane group -> (plan, queued jobs, base)
    for plan, splits, model_dir in cells:
        jobs = pending_jobs(plan)
        mine = {job.key: training_payload(plan.config, job, splits) for job in jobs}
        grouped = jobs
        if plan.config.resources.job_queue and jobs:
            members, grouped = _queue_members(jobs)
            shared.setdefault(_lane_group(plan, members[0], model_dir), []).append((plan, members, model_dir))
        runs += [replace(run, id=f"{plan.cell}{run.id}", model_dir=model_dir)
                 for run in group_runs(grouped, plan.config.resources.controls_per_run)]
        payloads |= mine
        data_refs |= {key: ray.put(payload) for key, payload in mine.items()}
        trained += jobs
    queued, others = {}, bool(runs)
    for number, members in enumerate(shared.values()):
        lanes = _lanes(members, payloads, group=f"lanes-{number}", others=others)
        runs += lanes
        queued[lanes[0].group] = list(lanes[0].queued)
    if not runs:
        log.info("train: all %d models already trained, skipping", sum(len(cell[0].jobs) for cell in cells))
        return []
    config = cells[0][0].config
    res = config.resources
    storage = res.storage_path or str(cells[0][0].out / "ray_storage")
    queue = None
    if queued:
        from runner.training.queue import JobQueue

        queue = JobQueue.remote(queued)
    trainable = tune.with_resources(
        tune.with_parameters(_run_trainer, runs={run.id: run for run in runs}, data_refs=data_refs,
                             storage=storage, max_failures=res.max_failures, queue=queue),
        # The trial only drives its trainer; the trainer's workers hold the real resources.
        {"CPU": 0, "memory": 1})
    limit = max_concurrent(config, runs)
    log.info("train: %d models in %d Ray Train runs, up to %d at once%s", len(trained), len(runs), limit,
             f" ({sum(map(len, queued.values()))} queued for {sum(run.lane for run in runs)} lanes, "
             "longest first)"
             if queued else "")
    tuner = tune.Tuner(
        trainable,
        param_space={"run": tune.grid_search([{"id": run.id} for run in runs])},
        tune_config=tune.TuneConfig(max_concurrent_trials=limit),
        run_config=tune.RunConfig(name=f"train-{stable_hash([run.id for run in runs])}", storage_path=storage,
                                  verbose=0, callbacks=[TuneProgress(len(trained), "train")]),
    )
    # Tune's own SIGINT handler would end the run "gracefully" and return unfinished results as if
    # done; the CLI's handler stops the run and says what finished instead.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    results = tuner.fit()
    failed = [r for r in results if r.error]
    if failed:
        first = failed[0]
        raise TrainingFailed(f"train: {len(failed)} of {len(runs)} runs failed; first: "
                             f"{first.config['run']['id']}: {one_line(first.error)}")
    return trained


def _queue_members(jobs: list[TrainJob]) -> tuple[list[TrainJob], list[TrainJob]]:
    """resources.job_queue: the jobs that share the controls' worker shape (they go to the queue), and
    the others (E where it has its own shape, in its own run)."""
    controls = [j for j in jobs if j.role == CONTROL]
    head = controls[0] if controls else jobs[0]
    members = [j for j in jobs if _shape(j) == _shape(head)]
    return members, [j for j in jobs if _shape(j) != _shape(head)]


def _shape(job: TrainJob) -> tuple:
    return job.workers, job.cpus_per_worker, job.gpus_per_worker


def _lane_group(plan: Plan, job: TrainJob, model_dir: str) -> tuple:
    """Cells whose queued jobs one lane can train: one base model, loaded the same way (the worker loads
    it once from its run's config), on workers of one shape. Each job brings its own config (method,
    LoRA, optimizer), so a sweep over ranks, seeds or methods drains one queue, and no worker starts twice."""
    return model_dir, _shape(job), stable_hash(plan.config.model.model_dump(mode="json"))


def _lanes(cells: list[tuple[Plan, list[TrainJob], str]], payloads: dict, group: str, others: bool) -> list[TrainRun]:
    """The lanes of one queue (its cells' jobs, longest first): as many as runs may go at once, less
    one where runs of another shape (`others`: E on its own workers) take slots too."""
    from runner.training.queue import by_expected_work

    plan, _, model_dir = cells[0]
    jobs = [job for _, members, _ in cells for job in members]
    limit = plan.config.resources.max_concurrent_jobs or len(jobs)
    count = max(1, min(len(jobs), limit - others))
    sizes = {task: _mean_size(payloads, job) for job in jobs for task in job.tasks if job.role == CONTROL}
    ordered = tuple(by_expected_work(jobs, sizes))
    name = f"{plan.cell}lane" if len(cells) == 1 else group  # one cell's lanes keep their names
    head = jobs[0]
    return [TrainRun(id=f"{name}-{i}", jobs=(), workers=head.workers, cpus_per_worker=head.cpus_per_worker,
                     gpus_per_worker=head.gpus_per_worker, model_dir=model_dir, queued=ordered, group=group)
            for i in range(count)]


def _mean_size(payloads: dict, job: TrainJob) -> float:
    """A control's mean training example size in characters: its steps' relative cost."""
    data = payloads[job.key]
    texts = [p + t for p, t in zip(data["train_prompt"], data["train_target"])]
    return sum(map(len, texts)) / max(len(texts), 1)


@dataclass(frozen=True)
class SlotUse:
    """How the training stage's job slots (wall seconds x concurrent runs) were spent."""

    wall: float
    slots: int
    steps: float       # optimizer steps, summed over the models
    validation: float  # validation passes, summed over the models

    @property
    def total(self) -> float:
        return self.wall * self.slots

    @property
    def model_work(self) -> float:
        return (self.steps + self.validation) / self.total if self.total else 0.0

    def describe(self) -> str:
        rest = 1 - self.model_work
        return (f"model work {self.model_work:.0%} of {self.slots} slots x {self.wall:.0f}s (steps "
                f"{self.steps / self.total:.0%}, validation {self.validation / self.total:.0%}, the rest {rest:.0%}: "
                "worker start-up, base loading, engines, checkpoints, idle slots)")


def slot_use(frame: pl.DataFrame, wall: float, slots: int) -> SlotUse:
    """The share of `slots` x `wall` seconds the models in `frame` (training.parquet rows) spent stepping and validating."""
    return SlotUse(wall=wall, slots=slots, steps=float(frame["step_seconds"].fill_null(0).sum()),
                   validation=float(frame["eval_seconds"].fill_null(0).sum()))


def training_frame(plan: Plan, externals: Sequence[ExternalModel] = ()) -> pl.DataFrame:
    """One row per model: each trained one from its done marker, with E's exposure to each control's
    task (`trained` true, `kind` lora or full: training.method); its validation loss beside the
    pretrained model's on the same examples (`pretrained_val_loss`, `val_gain_se`: the standard
    error of the fall); `seconds` from the job's start to its published adapter, of which
    `step_seconds` in optimizer steps and `eval_seconds` validating; then each published experimental model (`externals`,
    runner.models.external.ExternalModel), loaded and not trained here: `trained` false, its source
    and revision, and no training columns."""
    info = {job.id: json.loads((Path(job.out_dir) / SUCCESS).read_text()) for job in plan.jobs}
    seen_by_multitask = (info[MULTITASK].get("examples_by_task") or {}) if MULTITASK in info else {}
    rows = []
    for job in plan.jobs:
        i = info[job.id]
        row = {"model": job.id, "label": job.label, "role": job.role, "tasks": ",".join(job.tasks),
               "seed": job.seed, "steps": i.get("steps"), "min_steps": job.min_steps, "max_steps": job.max_steps,
               "examples_seen": i.get("examples_seen"), "best_val_loss": i.get("best_val_loss"),
               "converged": i.get("converged"), "stopped": i.get("stopped"),
               "pretrained_val_loss": i.get("pretrained_val_loss"), "val_gain_se": i.get("val_gain_se"),
               "val_examples": i.get("val_examples"), "peak_lr": i.get("peak_lr"), "stop_lr": i.get("stop_lr"),
               "seconds": i.get("seconds"), "step_seconds": i.get("step_seconds"), "eval_seconds": i.get("eval_seconds"),
               "started_at": i.get("started_at"), "finished_at": i.get("finished_at"),
               "multitask_examples": None, "trained": True, "kind": i.get("method", plan.config.training.method),
               "source": job.out_dir, "revision": None}
        if job.role == CONTROL and job.tasks[0] in seen_by_multitask:
            row["multitask_examples"] = seen_by_multitask[job.tasks[0]]
        rows.append(row)
    for model in externals:
        rows.append({"model": model.label, "label": model.label, "role": EXTERNAL, "trained": False,
                     "kind": model.kind, "source": model.name, "revision": model.revision})
    schema = {"model": pl.String, "label": pl.String, "role": pl.String, "tasks": pl.String, "seed": pl.Int64,
              "steps": pl.Int64, "min_steps": pl.Int64, "max_steps": pl.Int64, "examples_seen": pl.Int64,
              "best_val_loss": pl.Float64, "converged": pl.Boolean, "stopped": pl.String,
              "pretrained_val_loss": pl.Float64, "val_gain_se": pl.Float64, "val_examples": pl.Int64,
              "peak_lr": pl.Float64, "stop_lr": pl.Float64, "seconds": pl.Float64, "step_seconds": pl.Float64,
              "eval_seconds": pl.Float64, "started_at": pl.Float64, "finished_at": pl.Float64,
              "multitask_examples": pl.Int64, "trained": pl.Boolean, "kind": pl.String, "source": pl.String,
              "revision": pl.String}
    return pl.DataFrame(rows, schema=schema)
