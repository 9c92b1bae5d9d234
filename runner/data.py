"""From the task suite to what each stage consumes: training payloads, probe rows, statistics."""

from __future__ import annotations

import polars as pl

import tasks as suite
from analysis.roles import MULTITASK
from runner.config import ExperimentConfig
from runner.plan import TaskRef, TrainJob


def select_tasks(config: ExperimentConfig) -> list[TaskRef]:
    return [TaskRef(spec.name, spec.cluster) for spec in suite.resolve_tasks(config.tasks.select)]


def source_pool_size(config: ExperimentConfig) -> int | None:
    """Training rows per task in the configured source, when known without loading it."""
    if config.tasks.source == "offline":
        from tasks.miniflan.build import POOL_SIZES

        return POOL_SIZES["train"]
    return None


def load_all_splits(config: ExperimentConfig, refs: list[TaskRef],
                    sizes: dict[str, int | None] | None = None) -> dict[str, suite.TaskSplits]:
    """Every task's splits; `sizes` (task -> training examples) overrides tasks.max_train."""
    t = config.tasks
    sizes = sizes or {}
    return {ref.name: suite.load_splits(ref.name, source=t.source, probe_size=config.extraction.probe_size,
                                        val_size=t.val_size, test_size=t.test_size,
                                        max_train=sizes.get(ref.name, t.max_train), seed=t.seed, data_dir=t.data_dir)
            for ref in refs}


def training_payload(config: ExperimentConfig, job: TrainJob, splits: dict[str, suite.TaskSplits]) -> dict:
    """Plain lists (cheap to ship through the object store) of one job's train and val text."""
    if job.role == MULTITASK:
        train = suite.build_mixture({name: splits[name].train for name in job.tasks},
                                    cap=config.tasks.mixture_cap, seed=config.tasks.seed)
    else:
        train = splits[job.tasks[0]].train
    # A bounded validation set: early stopping evaluates it often, so its cost must not grow
    # with the number of tasks. E takes an equal share from every task.
    share = max(1, config.training.max_val_examples // len(job.tasks))
    val_prompt = [p for name in job.tasks for p in splits[name].validation["prompt"][:share]]
    val_target = [t for name in job.tasks for t in splits[name].validation["target"][:share]]
    return {"train_prompt": list(train["prompt"]), "train_target": list(train["target"]),
            "train_task": list(train["task"]), "val_prompt": val_prompt, "val_target": val_target}


def probe_frame(splits: dict[str, suite.TaskSplits], refs: list[TaskRef]) -> pl.DataFrame:
    """All probe instructions, grouped by task so an inference actor swaps adapters rarely."""
    return pl.concat([
        pl.DataFrame({"example_id": list(splits[r.name].probe["example_id"]),
                      "task": r.name, "cluster": r.cluster,
                      "prompt": list(splits[r.name].probe["prompt"])})
        for r in refs])
