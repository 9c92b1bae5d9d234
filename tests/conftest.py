"""Shared fixtures: an isolated cache per test session and the tiny experiment, run once; and the
split of the suite into the inner loop (`make test-fast`) and the rest.

A test is `slow` (left out of `make test-fast`) when it needs Ray or trains a model, which the
collection hook below decides from what the test uses, so a new test lands in the right set:
- a fixture in SLOW_FIXTURES, directly or through another fixture (`tiny_run`, `local_ray`, or
  `real_run`: the CLI for a run that starts Ray, which a test asks for instead of calling
  `layerwise` itself);
- a module that imports a training or Ray library at its top (SLOW_IMPORTS).
Everything else (the pure analysis/ and tasks/ tests, config and CLI checks that fail or print
before Ray starts) is fast.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "experiments" / "tiny.yaml"

SLOW_FIXTURES = {"tiny_run", "local_ray", "real_run"}
SLOW_IMPORTS = ("ray", "deepspeed", "peft", "runner.training.trainer")


def _imports_slow(module) -> bool:
    """Whether a test module's top-level names come from a training or Ray library."""
    for value in vars(module).values():
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and any(name == lib or name.startswith(lib + ".") for lib in SLOW_IMPORTS):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs Ray or trains a model (set by tests/conftest.py; "
                                       "`make test-fast` runs -m 'not slow')")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or (module is not None and _imports_slow(module)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models and mini-Flan files built by the tests go to a fresh folder, never ~/.cache."""
    cache = tmp_path_factory.mktemp("layerwise-cache")
    os.environ["LAYERWISE_CACHE"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LAYERWISE_DASHBOARD", "0")  # ~10 CPU-seconds per local Ray start nobody watches
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


@pytest.fixture(scope="session")
def real_run():
    """`layerwise` for a command that starts Ray (a run, a sweep, a stage): asking for it marks a test slow."""
    return layerwise


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
