"""A plain (non-editable) `pip install .` works outside the source tree: presets and task data ship
as package data, and the build is quiet (no licence deprecation warnings)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from runner.config import ConfigError, config_path, preset_names, preset_path

ROOT = Path(__file__).resolve().parent.parent


def _clean_env() -> dict[str, str]:
    # Nothing may reach the checkout: no PYTHONPATH, and the commands run from another folder.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _clean_clone(dest: Path) -> Path:
    """The tracked files of this checkout (what a clone holds), with this session's edits."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target = dest / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(a fresh venv holding a wheel of this project, a folder outside the source tree).

    The venv gets the project's dependencies from the test environment through a path entry (installing
    torch and Ray again would take minutes and teach nothing); the project itself comes only from the wheel.
    """
    root = tmp_path_factory.mktemp("install")
    src = _clean_clone(root / "src")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(root / "dist"), str(src)], capture_output=True, text=True, env=_clean_env())
    assert build.returncode == 0, build.stderr[-2000:]
    noise = [line for line in (build.stdout + build.stderr).splitlines() if "Warning" in line or "deprecat" in line]
    assert not noise, noise[:5]
    wheel = next((root / "dist").glob("layerwise-*.whl"))
    venv = root / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, env=_clean_env())
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere


def _run(installed: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess:
    venv, cwd = installed
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
                          env=_clean_env(), timeout=300)


def test_wheel_imports_from_site_packages_not_the_checkout(installed):
    venv, _ = installed
    where = _run(installed, "python", "-c", "import runner, tasks, analysis; print(runner.__file__, tasks.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(venv)) for path in where.stdout.split()), where.stdout


def test_installed_dry_run_takes_a_preset_name(installed):
    done = _run(installed, "layerwise", "run", "--config", "demo", "--dry-run", "--out", "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "report:" in done.stdout and "extract:" in done.stdout


def test_installed_tasks_lists_the_registry(installed):
    done = _run(installed, "layerwise", "tasks")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "snli" in done.stdout and "tasks in" in done.stdout.splitlines()[-1]


def test_preset_names_and_paths():
    assert {"tiny", "demo", "study", "paper"} <= set(preset_names())
    assert config_path("demo") == preset_path("demo")
    # The checkout's experiments/ is the same folder, so docs and muscle memory keep working.
    assert (ROOT / "experiments" / "demo.yaml").resolve() == preset_path("demo").resolve()
    assert config_path(ROOT / "experiments" / "tiny.yaml") == ROOT / "experiments" / "tiny.yaml"
    with pytest.raises(ConfigError, match="no such config file or preset.*tiny"):
        config_path("nosuch")
    with pytest.raises(ConfigError, match="no such config file or preset"):
        config_path("nosuch.yaml")
