"""Shared fixtures: an isolated cache per test session and the tiny experiment, run once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "experiments" / "tiny.yaml"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models and mini-Flan files built by the tests go to a fresh folder, never ~/.cache."""
    cache = tmp_path_factory.mktemp("layerwise-cache")
    os.environ["LAYERWISE_CACHE"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return cache


def layerwise(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`layerwise run` on the tiny preset, shared by every test that inspects its artifacts."""
    out = tmp_path_factory.mktemp("tiny-run")
    result = layerwise("run", "--config", str(TINY), "--out", str(out))
    assert result.returncode == 0, result.stderr[-4000:]
    (out / "console.txt").write_text(result.stdout + result.stderr)  # what the user saw
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray of one CPU for the module (or the one already running)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
