"""Per-task train / validation / probe / test splits, rendered through the task's templates."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import datasets
import numpy as np

from tasks.registry import get_task
from tasks.sources import SOURCES, Provenance, hub_pools, offline_pools, packaged_pools, provenance, submix_pools
from tasks.spec import TaskFileError, TaskSpec
from tasks.templates import render, template_id_for
from tasks.text import clip_words

PER_DATASET_CAP = 30_000  # FLAN: train[:30000]
SPLIT_NAMES = ("train", "validation", "probe", "test")

FEATURES = datasets.Features({
    "example_id": datasets.Value("string"),
    "task": datasets.Value("string"),
    "cluster": datasets.Value("string"),
    "template_id": datasets.Value("int32"),
    "prompt": datasets.Value("string"),
    "target": datasets.Value("string"),
    "options": datasets.Sequence(datasets.Value("string")),
})


@dataclass(frozen=True)
class TaskSplits:
    """One task's four disjoint splits (datasets.Dataset with the FEATURES columns)."""

    task: str
    cluster: str
    train: datasets.Dataset
    validation: datasets.Dataset
    probe: datasets.Dataset
    test: datasets.Dataset
    provenance: Provenance | None = None  # where the rows come from (tasks.sources.provenance)

    def items(self) -> Iterator[tuple[str, datasets.Dataset]]:
        return iter((name, getattr(self, name)) for name in SPLIT_NAMES)

    def sizes(self) -> dict[str, int]:
        return {name: len(ds) for name, ds in self.items()}


def _rng(task: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def _clipped(row: dict, fields: tuple[str, ...], max_words: int | None) -> dict:
    if max_words is None or not fields:
        return row
    return {k: clip_words(v, max_words) if k in fields and isinstance(v, str) else v for k, v in row.items()}


def _render(spec: TaskSpec, pool: datasets.Dataset, indices: list[int], split: str,
            max_words: int | None = None) -> datasets.Dataset:
    """Render the chosen pool rows. The pool index fixes both the example id and, round-robin,
    the template, so an example keeps its id and prompt whatever else is selected. The task's
    long-context fields (TaskSpec.clip) are cut to their first `max_words` words (tasks.max_words)."""
    cols: dict[str, list] = {k: [] for k in FEATURES}
    rows = pool.select(indices) if len(indices) != len(pool) else pool
    for i, row in zip(indices, rows):
        row = _clipped(row, spec.clip, max_words)
        if "prompt" in row:  # flan_submix: FLAN rendered it already
            tid, prompt, target, options = -1, row["prompt"], row["target"], []
        else:
            # Test examples are scored against the task's answer, so they use forward templates only.
            tid = template_id_for(i, forward_only=split == "test", task=spec)
            prompt, target, options = render(spec, row, tid)
        cols["example_id"].append(f"{spec.name}:{split}:{i:06d}")
        cols["task"].append(spec.name)
        cols["cluster"].append(spec.cluster)
        cols["template_id"].append(tid)
        cols["prompt"].append(prompt)
        cols["target"].append(target)
        cols["options"].append(options)
    return datasets.Dataset.from_dict(cols, features=FEATURES)


def load_splits(task: str | TaskSpec, *, source: str = "offline", probe_size: int = 64, val_size: int = 32,
                test_size: int = 32, max_train: int | None = None, seed: int = 0, data_dir: str | None = None,
                per_dataset_cap: int | None = PER_DATASET_CAP, max_words: int | None = None) -> TaskSplits:
    """Train, validation, probe and test splits of one task, disjoint by construction.

    Probe and test are disjoint seeded samples of the held-out pool (the dataset's test
    split), so probes are never trained on; validation comes from the validation pool and
    train is the first min(max_train, per_dataset_cap) rows of the training pool.
    """
    spec = get_task(task)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    caps = [c for c in (max_train, per_dataset_cap) if c is not None]
    train_cap = min(caps) if caps else None
    if spec.files is not None:  # a user's task always reads its own files
        from tasks.userfiles import file_pools

        pools = file_pools(spec)
    elif source == "offline":
        pools = offline_pools(spec)
    elif source == "packaged":
        pools = packaged_pools(spec)
    elif source == "hub":
        pools = hub_pools(spec, data_dir=data_dir, train_limit=train_cap, heldout_min=probe_size + test_size, val_min=val_size)
    else:
        pools = submix_pools(spec, data_dir=data_dir, limit=train_cap, heldout_min=probe_size + test_size, val_min=val_size)

    held, val_pool, train_pool = pools["heldout"], pools["validation"], pools["train"]
    if probe_size + test_size > len(held):
        if spec.files is not None:
            raise TaskFileError(f"{spec.files.files['test']}: task {spec.name!r}: extraction.probe_size + "
                                f"tasks.test_size = {probe_size + test_size} exceed its {len(held)} test rows; "
                                "add rows or lower them")
        raise ValueError(f"{spec.name}: probe_size + test_size = {probe_size + test_size} exceeds the "
                         f"{len(held)} held-out examples of source '{source}'")
    rng = _rng(spec.name, seed)
    perm = rng.permutation(len(held)).tolist()
    probe_idx, test_idx = sorted(perm[:probe_size]), sorted(perm[probe_size:probe_size + test_size])
    val_idx = sorted(rng.permutation(len(val_pool)).tolist()[:val_size])
    n_train = len(train_pool) if train_cap is None else min(train_cap, len(train_pool))
    return TaskSplits(
        task=spec.name,
        cluster=spec.cluster,
        train=_render(spec, train_pool, list(range(n_train)), "train", max_words),
        validation=_render(spec, val_pool, val_idx, "validation", max_words),
        probe=_render(spec, held, probe_idx, "probe", max_words),
        test=_render(spec, held, test_idx, "test", max_words),
        provenance=provenance(spec, source),
    )
