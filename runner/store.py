"""The artifact store: atomic writes, content-keyed stage folders and the run manifest.

A finished artifact is published by a rename, and a stage folder counts as done only when its
`_SUCCESS.json` holds the key it was built from. So a killed process leaves at most a stray
temp folder, never a half-written artifact that looks finished, and a re-run skips exactly
the work whose inputs have not changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import polars as pl

SUCCESS = "_SUCCESS.json"


class ArtifactError(ValueError):
    """An artifact on disk is missing or unreadable; the message says which stage to re-run."""


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
    os.replace(tmp, path)


def atomic_write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    frame.write_parquet(tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


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
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)


def is_done(folder: Path, key: str) -> bool:
    marker = folder / SUCCESS
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("key") == key
    except (OSError, json.JSONDecodeError):
        return False  # a corrupt marker means "not done": the stage is rebuilt, not trusted


def mark_done(folder: Path, key: str, **info: object) -> None:
    atomic_write_text(folder / SUCCESS, json.dumps({"key": key, "finished": time.time(), **info}, indent=2))


def read_parquet(path: Path, what: str) -> pl.DataFrame:
    """Read an artifact, turning a missing or corrupt file into one actionable line."""
    if not path.exists():
        raise ArtifactError(f"{path}: missing {what}; run the stage that writes it first (see `layerwise --help`)")
    try:
        return pl.read_parquet(path)
    except Exception as err:
        raise ArtifactError(f"{path}: corrupt {what} ({type(err).__name__}); delete it and re-run its stage") from None


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
            return json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def record(self, stage: str, seconds: float, **info: object) -> None:
        self.data["stages"][stage] = {"seconds": round(seconds, 3), "finished": time.time(), **info}
        atomic_write_text(self.path, json.dumps(self.data, indent=2, default=str))
