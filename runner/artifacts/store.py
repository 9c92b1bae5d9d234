"""The artifact store: atomic writes, verified stage markers and the run manifest.

A finished artifact is published by a rename, and a stage folder counts as done only when its
`_SUCCESS.json` holds the key it was built from and every file it vouches for still checks out
(size, plus a checksum or a structural check, see `mark_done`). So a killed process leaves at
most a stray temp (`remove_litter` clears it), a damaged file makes exactly its unit rebuild,
and a re-run skips exactly the work whose inputs have not changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import random
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import polars as pl

SUCCESS = "_SUCCESS.json"
MARKER_VERSION = 2
FULL_HASH_MAX = 4 * 2**20  # files up to 4 MiB are hashed in full; bigger ones get a structural check
EDGE = 64 * 2**10  # ...plus a hash of their first and last 64 KiB

log = logging.getLogger("layerwise.store")


class ArtifactError(ValueError):
    """An artifact on disk is missing or unreadable; the message says which stage to re-run."""


# --- atomic writes ------------------------------------------------------------------------------
# Every temp is named `.<final name>.<8 random chars>` (tempfile's own pattern), beside its final
# path, so `remove_litter` can recognise what a killed writer left behind.

_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_LITTER = re.compile(rf"^\.(?:.+\.|build-)[{_TEMP_CHARS}]{{8}}$")


def _is_litter(name: str) -> bool:
    return bool(_LITTER.match(name))


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        frame.write_parquet(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder beside `final`; on success it replaces `final` in one rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        # Move the old folder aside first, so a kill mid-replace leaves litter, never a half-deleted
        # folder whose marker survived.
        old = final.parent / f".{final.name}.{''.join(random.SystemRandom().choices(_TEMP_CHARS, k=8))}"
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_litter(out: Path) -> list[Path]:
    """Delete the temps that killed writers left anywhere under `out`; return what was removed.

    Call it only while holding `runner.artifacts.lock.RunLock(out)`: the lock proves that no live run is
    writing under `out`, so every temp there is dead. Finished artifacts never match the temp
    pattern (`.<name>.<8 random chars>`, `.build-<8 random chars>`), and hidden folders that are
    not temps (e.g. `.git`) are not entered.
    """
    removed: list[Path] = []
    if not out.is_dir():
        return removed
    for root, dirs, files in os.walk(out):
        for name in [d for d in dirs if d.startswith(".")]:
            dirs.remove(name)  # never descend into hidden folders; remove the temp ones whole
            if _is_litter(name):
                path = Path(root) / name
                if path.is_symlink():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        for name in files:
            if _is_litter(name):
                path = Path(root) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed.append(path)
    if removed:
        shown = ", ".join(_show(p) for p in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        log.info("removed %d leftover temp(s) of a killed run: %s", len(removed), shown)
    return removed


# --- fingerprints: what a marker vouches for ---------------------------------------------------


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    path = Path(os.path.normpath(path))
    with contextlib.suppress(ValueError, OSError):
        return str(path.absolute().relative_to(Path.cwd()))
    return str(path)


def _format_of(path: Path) -> str | None:
    return {".parquet": "parquet", ".safetensors": "safetensors"}.get(path.suffix)


def _hash(path: Path, size: int) -> str:
    """blake2b of the whole file when small, else of its size and first and last EDGE bytes."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        if size <= FULL_HASH_MAX:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        else:
            digest.update(size.to_bytes(8, "little"))
            digest.update(handle.read(EDGE))
            handle.seek(max(0, size - EDGE))
            digest.update(handle.read(EDGE))
    return digest.hexdigest()


def _parquet_problem(path: Path, size: int) -> str | None:
    if size < 12:
        return f"{size:,} bytes, too short for a Parquet file"
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(size - 8)
        tail = handle.read(8)
    if tail[4:] != b"PAR1":
        return f"not a complete Parquet file ({size:,} bytes, no PAR1 at the end: truncated?)"
    if head != b"PAR1":
        return "not a Parquet file (no PAR1 at the start)"
    if int.from_bytes(tail[:4], "little") + 12 > size:
        return f"Parquet footer length exceeds the file ({size:,} bytes)"
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as err:
        return f"unreadable Parquet footer ({type(err).__name__}: {_first_line(err)})"
    return None


def _safetensors_problem(path: Path, size: int) -> str | None:
    if size < 8:
        return f"{size:,} bytes, too short for a safetensors file"
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if length > 100 * 2**20:  # safetensors' own limit: this is not a header length at all
            return "not a safetensors file (its first 8 bytes are no header length)"
        if length > size - 8:
            return f"{size:,} bytes, but its safetensors header alone claims {length:,} (truncated?)"
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return "unreadable safetensors header"
    if 8 + length + end != size:
        return f"{size:,} bytes, but its safetensors header says the tensors end at byte {8 + length + end:,}"
    return None


def _structure_problem(path: Path, size: int, fmt: str | None) -> str | None:
    if fmt == "parquet":
        return _parquet_problem(path, size)
    if fmt == "safetensors":
        return _safetensors_problem(path, size)
    return None


def _fingerprint(path: Path) -> dict:
    size = path.stat().st_size
    fmt = _format_of(path)
    problem = _structure_problem(path, size, fmt)
    if problem:
        raise ArtifactError(f"{_show(path)}: {problem}; refusing to mark it finished (its stage wrote a broken file)")
    entry: dict = {"size": size, "blake2b": _hash(path, size)}
    if size > FULL_HASH_MAX:
        entry["hashed"] = "edges"  # the digest covers only the first and last EDGE bytes
        if fmt:
            entry["format"] = fmt
    return entry


def _entry_problem(path: Path, entry: Mapping) -> str | None:
    """What is wrong with one vouched-for file, or None. Reads at most EDGE * 2 bytes plus a
    Parquet footer or safetensors header for a big file, the whole file for a small one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({type(err).__name__})"
    if not isinstance(entry.get("size"), int):
        return "malformed marker entry"
    if size != entry["size"]:
        return f"{size:,} bytes, expected {entry['size']:,}"
    try:
        fmt = entry.get("format")
        if fmt and (problem := _structure_problem(path, size, fmt)):
            return problem
        if "blake2b" in entry and _hash(path, size) != entry["blake2b"]:
            # Name the structural damage when there is one; else say only that it changed.
            return _structure_problem(path, size, _format_of(path)) or "contents changed since it was finished"
    except OSError as err:
        return f"unreadable ({type(err).__name__}: {err.strerror or err})"
    return None


def _walk_files(folder: Path) -> Iterator[Path]:
    """Every file under `folder`, sorted, except its own marker and temps a killed writer left."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _is_litter(d))
        for name in sorted(files):
            if _is_litter(name) or (name == SUCCESS and Path(root) == folder):
                continue
            yield Path(root) / name


# --- markers ----------------------------------------------------------------------------------


def mark_done(folder: Path, key: str, *, files: Iterable[Path] = (), **info: object) -> None:
    """Write `folder/_SUCCESS.json`: `key`, `info` and a fingerprint of every file it vouches for.

    It vouches for every file under `folder` (recursively) plus `files`, which may lie outside it
    (e.g. the top-level frames that an `analysis/` marker stands for). Each file gets its size and
    a blake2b digest: of the whole file up to FULL_HASH_MAX, else of its first and last EDGE
    bytes, with a Parquet footer / safetensors header check recorded for the check to redo.
    Raises ArtifactError, naming the file, when a Parquet or safetensors file is already broken.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vouched = {path.relative_to(folder).as_posix(): _fingerprint(path) for path in _walk_files(folder)}
    for path in files:
        vouched[Path(os.path.relpath(Path(path).absolute(), folder.absolute())).as_posix()] = _fingerprint(Path(path))
    marker = {"key": key, "finished": time.time(), **info, "marker_version": MARKER_VERSION, "files": vouched}
    atomic_write_text(folder / SUCCESS, json.dumps(marker, indent=2, default=str))


@dataclass(frozen=True)
class DoneState:
    """What `check_done` found. Truthy only when done."""

    state: Literal["done", "absent", "stale", "damaged"]
    problem: str = ""  # one line naming the file, for "stale" and "damaged"
    verified: bool = False  # done and every vouched-for file checked; False for old key-only markers
    marker: Mapping = field(default_factory=dict, repr=False)  # the marker's fields (key, finished, info, files)

    @property
    def done(self) -> bool:
        return self.state == "done"

    def __bool__(self) -> bool:
        return self.done


def check_done(folder: Path, key: str | None = None) -> DoneState:
    """Is `folder` finished for `key` (any key when None), with every file its marker vouches for intact?

    Old markers (key only, written before files were recorded) count as done but unverified: they
    were published by the same atomic rename, and refusing them would silently retrain every model
    of an existing output. Their Parquet and safetensors files still get the cheap structural
    check, so a truncated one is caught all the same.
    """
    marker_path = folder / SUCCESS
    try:
        marker = json.loads(marker_path.read_text())
        if not isinstance(marker, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return DoneState("absent")
    except (OSError, ValueError) as err:
        return DoneState("damaged", f"{_show(marker_path)}: unreadable marker ({type(err).__name__})")
    if key is not None and marker.get("key") != key:
        return DoneState("stale", f"{_show(marker_path)}: built for key {marker.get('key')}, not {key}", marker=marker)
    vouched = marker.get("files")
    if not isinstance(vouched, dict):  # an old marker: no list of files to verify
        for path in _walk_files(folder):
            with contextlib.suppress(OSError):
                if problem := _structure_problem(path, path.stat().st_size, _format_of(path)):
                    return DoneState("damaged", f"{_show(path)}: {problem}", marker=marker)
        return DoneState("done", verified=False, marker=marker)
    for name, entry in vouched.items():
        path = folder / name
        problem = _entry_problem(path, entry) if isinstance(entry, Mapping) else "malformed marker entry"
        if problem:
            return DoneState("damaged", f"{_show(path)}: {problem}", marker=marker)
    return DoneState("done", verified=True, marker=marker)


_warned: set[tuple[str, object, str]] = set()


def is_done(folder: Path, key: str) -> bool:
    """True when `folder` is finished for `key` and intact. A damaged unit logs one warning line
    naming the file (once per process and damage) and counts as not done, so it is rebuilt."""
    found = check_done(folder, key)
    if found.state == "damaged":
        seen = (str(folder), found.marker.get("finished"), found.problem)
        if seen not in _warned:
            _warned.add(seen)
            log.warning("%s; counted as not done, so it is rebuilt", found.problem)
    return found.done


def stamp(*folders: Path) -> str:
    """A fingerprint of the done markers of `folders`. A stage that records its inputs' stamp is
    current only while those inputs are the very artifacts it was built from: a rebuilt model or
    extraction gets a new marker, so whatever was derived from it is rebuilt too."""
    digest = hashlib.sha256()
    for folder in folders:
        with contextlib.suppress(OSError):
            digest.update((Path(folder) / SUCCESS).read_bytes())
    return digest.hexdigest()[:16]


def is_current(folder: Path, key: str, inputs: str) -> bool:
    """Done for `key`, intact, and built from the inputs whose stamp is `inputs`."""
    return is_done(folder, key) and check_done(folder, key).marker.get("inputs") == inputs


# --- reading artifacts ------------------------------------------------------------------------


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _find_damage(path: Path) -> tuple[str | None, bool]:
    """The first damaged file at or under `path` (a file or a unit folder), and whether its unit's
    marker sees the damage (then `is_done` says not done, and a plain re-run rebuilds the unit)."""
    unit = path if path.is_dir() else path.parent
    found = check_done(unit)
    if found.state == "damaged":
        return found.problem, True
    for file in _walk_files(path) if path.is_dir() else [path]:
        with contextlib.suppress(OSError):
            if problem := _structure_problem(file, file.stat().st_size, _format_of(file)):
                return f"{_show(file)}: {problem}", False
    return None, False


def artifact_error(path: Path, what: str, err: BaseException) -> ArtifactError:
    """Turn a failed load of `path` (an adapter folder, a Parquet file or a folder of them) into one
    line that names the damaged file and says how to recover."""
    if isinstance(err, ArtifactError):
        return err
    path = Path(path)
    cause = f"{type(err).__name__}: {_first_line(err)}".rstrip(": ")
    if not path.exists():
        return ArtifactError(f"{_show(path)}: missing {what} ({cause}); run the stage that writes it first")
    problem, healable = _find_damage(path)
    unit = path if path.is_dir() else path.parent
    if problem and healable:
        return ArtifactError(f"{problem}; cannot load {what} ({cause}); re-run to rebuild it, or delete {_show(unit)}")
    # Delete the whole unit when the file belongs to a marked folder, else just the file.
    target = unit if (unit / SUCCESS).exists() else path
    where = f"{problem}; cannot" if problem else f"{_show(path)}: cannot"
    return ArtifactError(f"{where} load {what} ({cause}); delete {_show(target)} and re-run its stage")


@contextlib.contextmanager
def loading(path: Path, what: str) -> Iterator[None]:
    """Wrap the load of an artifact (e.g. `PeftModel.from_pretrained`, `pl.scan_parquet(...).collect()`)
    so that any failure becomes `artifact_error(path, what, err)`: one line naming the file."""
    try:
        yield
    except ArtifactError:
        raise
    except Exception as err:
        try:
            error = artifact_error(Path(path), what, err)
        except Exception:  # looking for the damage must not hide the original failure
            error = ArtifactError(f"{path}: cannot load {what} ({type(err).__name__}); delete it and re-run its stage")
        raise error from err


def read_parquet(path: Path, what: str) -> pl.DataFrame:
    """Read an artifact (a Parquet file, or a folder of them), turning a missing or corrupt one
    into one actionable line."""
    if not path.exists():
        raise ArtifactError(f"{path}: missing {what}; run the stage that writes it first (see `layerwise --help`)")
    with loading(path, what):
        return pl.read_parquet(path / "*.parquet" if path.is_dir() else path)


# --- the manifest -----------------------------------------------------------------------------

_VERSIONED = ("layerwise", "ray", "torch", "transformers", "peft", "deepspeed", "datasets", "polars", "numpy")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


class Manifest:
    """<out>/manifest.json: the config, package versions and per-stage timings of a run."""

    def __init__(self, out: Path, config: dict, config_hash: str):
        self.path = out / "manifest.json"
        previous = self._load()
        self.data = {
            "config_hash": config_hash,
            "config": config,
            "versions": versions(),
            "stages": previous.get("stages", {}) if previous.get("config_hash") == config_hash else {},
        }

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            log.warning("%s is damaged (%s); rebuilding it (its stage timings are lost, the artifacts are not)",
                        self.path, _first_line(err))
            return {}
        if not isinstance(data, dict):
            log.warning("%s is damaged (not a JSON object); rebuilding it", self.path)
            return {}
        return data

    def record(self, stage: str, seconds: float, **info: object) -> None:
        self.data["stages"][stage] = {"seconds": round(seconds, 3), "finished": time.time(), **info}
        atomic_write_text(self.path, json.dumps(self.data, indent=2, default=str))
