"""Generate the offline mini-Flan once into parquet files, in the layout the loader reads.

Cache: $LAYERWISE_CACHE (default ~/.cache/layerwise)/miniflan/<version>/<task>/<pool>.parquet.
The version hashes the generator code, lexicon and registry, so an edit regenerates.
Files are written to a temporary name and moved into place (os.replace), so concurrent
workers never read a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.adapters import canonicalize
from tasks.miniflan.generators import GENERATORS, Picker
from tasks.spec import TaskSpec

# Rows per pool. "heldout" feeds the probe and test splits (disjoint slices of it).
POOL_SIZES: dict[str, int] = {"train": 512, "validation": 64, "heldout": 192}
_POOL_OFFSETS = {"train": 0, "validation": 1, "heldout": 2}


@lru_cache(maxsize=1)
def generator_version() -> str:
    here = Path(__file__).parent
    h = hashlib.sha1()
    for f in (here / "generators.py", here / "lexicon.py", here.parent / "registry.yaml",
              here.parent / "adapters.py", Path(__file__)):
        h.update(f.read_bytes())
    return "v1-" + h.hexdigest()[:10]


def cache_root() -> Path:
    base = os.environ.get("LAYERWISE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "layerwise")
    return Path(base) / "miniflan" / generator_version()


def task_seed(task: str, pool: str) -> int:
    """Per-task, per-pool seed: stable across machines (crc32, not Python's salted hash)."""
    return zlib.crc32(f"miniflan:{task}".encode()) * 3 + _POOL_OFFSETS[pool]


_RETRIES = 25  # draws per row before a duplicate is accepted (tiny fact tables, e.g. closed-book QA)


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def generate_pool(spec: TaskSpec, pool: str, n: int | None = None, avoid: set[str] | frozenset = frozenset()) -> list[dict]:
    """n canonical rows. A row whose input is in `avoid` (an earlier pool) is re-drawn, best
    effort and within the same label, so held-out probes rarely repeat a training input while
    the label balance stays as generated. Duplicates inside one pool are allowed."""
    gen = GENERATORS[spec.generator]
    picker = Picker(task_seed(spec.name, pool))
    n = POOL_SIZES[pool] if n is None else n
    draw = lambda: canonicalize(spec, gen(spec, picker))
    rows: list[dict] = []
    while len(rows) < n:
        first = draw()
        if first is None:
            continue
        row = first
        if avoid and _key(first) in avoid:
            for _ in range(_RETRIES):
                cand = draw()
                if cand is not None and cand["label"] == first["label"] and _key(cand) not in avoid:
                    row = cand
                    break
        rows.append(row)
    return rows


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def pool_paths(task: str) -> dict[str, Path]:
    return {pool: cache_root() / task / f"{pool}.parquet" for pool in POOL_SIZES}


def ensure_task(spec: TaskSpec) -> dict[str, Path]:
    """Generate the task's pools if missing; return their paths."""
    paths = pool_paths(spec.name)
    if not all(p.exists() for p in paths.values()):
        seen: set[str] = set()
        tables = {}
        for pool in POOL_SIZES:  # train first: later pools avoid its inputs
            rows = generate_pool(spec, pool, avoid=seen)
            seen.update(_key(r) for r in rows)
            tables[pool] = pa.Table.from_pylist(rows)
        for pool, path in paths.items():
            _write_atomic(tables[pool], path)
    return paths
