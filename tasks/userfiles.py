"""A user's task rows from local files (JSONL, CSV or Parquet, by extension), through
`datasets.load_dataset`, into canonical pools {"train", "validation", "heldout"} like every source.

Columns are mapped by the entry's `source` (tasks.entry): `fields` (template field -> column),
`target` (the answer's column: for classification an option's text or its index) and `options`
(a column of per-row choices). Every error is one line naming the file, the task and the fix.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import datasets

from tasks.adapters import canonicalize
from tasks.spec import TaskFileError, TaskSpec

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
POOL_OF = {"train": "train", "validation": "validation", "test": "heldout"}  # file role -> pool


def _fail(path: str, spec: TaskSpec, what: str) -> TaskFileError:
    return TaskFileError(f"{path}: task {spec.name!r}: {what}")


def _load(spec: TaskSpec, role: str) -> datasets.Dataset:
    assert spec.files is not None
    path = spec.files.files[role]
    builder = BUILDERS.get(Path(path).suffix.lower())
    if builder is None:
        raise _fail(path, spec, f"cannot read {Path(path).suffix or 'a file without extension'} (use .jsonl, .csv or "
                                ".parquet)")
    if not os.path.isfile(path):
        raise _fail(path, spec, f"no such {role} file; fix source.files.{role} in {spec.files.origin} (paths are "
                                "relative to that file's folder)")
    if os.path.getsize(path) == 0:
        raise _fail(path, spec, f"the {role} split is empty; give it at least one row")
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(builder, data_files={role: path}, split=role)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise _fail(path, spec, f"cannot read it as {builder}: {type(err).__name__}: {first}") from None


def _option_index(value: object, options: list[str]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < len(options) else None
    text = str(value).strip()
    return options.index(text) if text in options else None


def _canonical(spec: TaskSpec, role: str, raw: datasets.Dataset) -> list[dict]:
    assert spec.files is not None
    src, path = spec.files, spec.files.files[role]
    needed = [*src.fields.values(), src.target, *([src.options] if src.options else [])]
    missing = [col for col in dict.fromkeys(needed) if col not in raw.column_names]
    if missing:
        raise _fail(path, spec, f"no column {missing[0]!r} (columns: {', '.join(raw.column_names)}); fix source.fields/"
                                f"target/options in {src.origin} or the file")
    if len(raw) == 0:
        raise _fail(path, spec, f"the {role} split is empty; give it at least one row")
    rows = []
    for i, r in enumerate(raw):
        row: dict = {field: "" if r[col] is None else str(r[col]) for field, col in src.fields.items()}
        if spec.is_classification:
            if src.options and not isinstance(r[src.options], list):
                raise _fail(path, spec, f"row {i + 1}: column {src.options!r} must hold a list of choices, "
                                        f"got {type(r[src.options]).__name__}")
            options = [str(o) for o in (r[src.options] or [])] if src.options else list(spec.options or [])
            label = _option_index(r[src.target], options)
            if label is None:
                raise _fail(path, spec, f"row {i + 1}: target {r[src.target]!r} is neither one of the options "
                                        f"({', '.join(options)}) nor an index into them")
            row.update(label=label, options=options)
        else:
            row["answer"] = "" if r[src.target] is None else str(r[src.target])
        out = canonicalize(spec, row)
        if out is None:
            raise _fail(path, spec, f"row {i + 1}: empty target in column {src.target!r}")
        rows.append(out)
    return rows


# (task, origin, content stamp) -> pools: preflight and the run read the files once.
_CACHE: dict[tuple[str, str, str], dict[str, datasets.Dataset]] = {}


def content_stamp(spec: TaskSpec) -> str:
    """A 12-hex hash of the task's files' bytes (and its task YAML): changes when a row does."""
    assert spec.files is not None
    digest = hashlib.sha256()
    for path in (spec.files.origin, *spec.files.files.values()):
        digest.update(path.encode())
        if os.path.isfile(path):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def file_pools(spec: TaskSpec) -> dict[str, datasets.Dataset]:
    """The task's canonical pools from its files; every row checked (columns, targets), cached per content."""
    assert spec.files is not None
    key = (spec.name, spec.origin, content_stamp(spec))
    if key not in _CACHE:
        _CACHE[key] = {POOL_OF[role]: datasets.Dataset.from_list(_canonical(spec, role, _load(spec, role)))
                       for role in spec.files.files}
    return _CACHE[key]


def file_pool_sizes(spec: TaskSpec) -> dict[str, int]:
    """Rows per pool (train, validation, heldout): reads and checks the files."""
    return {name: len(ds) for name, ds in file_pools(spec).items()}


def files_provenance(spec: TaskSpec) -> str:
    assert spec.files is not None
    return f"user files: {os.path.commonpath(list(spec.files.files.values()))}"
