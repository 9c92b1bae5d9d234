"""Measure plugins (analysis.plugins): the user's module registers measures that run on Ray's workers
like built-ins; a plugin that cannot be used fails in one line before Ray starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.plugins import PluginError, load_plugins, plugin_paths
from tests.conftest import ROOT, TINY, layerwise

EXAMPLE = ROOT / "examples" / "user_tasks" / "user_measures.py"


@pytest.fixture(autouse=True)
def _registry_restored():
    """A plugin registered in this process must not leak into other tests' loops over every measure."""
    from analysis.measures import registry

    before = dict(registry._REGISTRY)
    modules = set(sys.modules)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    for name in set(sys.modules) - modules:
        if name.startswith("plug_"):
            del sys.modules[name]


def _plugin(folder: Path, module: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(body)
    return folder


REGISTERS = '''
import numpy as np
from analysis.measures import register

@register("{name}", kind="pairwise", higher_is_similar=True, description="mean cosine of matched rows")
def _fn(x, y):
    a, b = x.features, y.features
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
'''


def test_a_plugin_registers_a_measure_that_get_measure_finds(tmp_path, monkeypatch):
    from analysis.measures import get_measure, list_measures

    monkeypatch.syspath_prepend(str(_plugin(tmp_path, "plug_cosine", REGISTERS.format(name="row_cosine_test"))))
    load_plugins(["plug_cosine"])
    load_plugins(["plug_cosine"])  # idempotent: the driver's preflight and the stage may both load it
    assert "row_cosine_test" in list_measures("pairwise")
    x = np.random.default_rng(3).normal(size=(20, 6))
    assert get_measure("row_cosine_test")(x, x) == pytest.approx(1.0)
    assert plugin_paths(["plug_cosine"]) == [str(tmp_path / "plug_cosine.py")]


@pytest.mark.parametrize(("body", "expected"), [
    (REGISTERS.format(name="linear_cka"), "'linear_cka' is already registered"),
    ("def broken(:\n", "SyntaxError"),
    ("import no_such_dependency_xyz\n", "no_such_dependency_xyz"),
])
def test_a_bad_plugin_fails_in_one_line(tmp_path, monkeypatch, body, expected):
    module = f"plug_bad_{abs(hash(body)) % 10**6}"
    monkeypatch.syspath_prepend(str(_plugin(tmp_path, module, body)))
    with pytest.raises(PluginError) as err:
        load_plugins([module])
    assert expected in str(err.value) and module in str(err.value) and "\n" not in str(err.value)


def test_a_missing_plugin_says_how_to_fix_it():
    with pytest.raises(PluginError, match="no such module; put its folder on PYTHONPATH"):
        load_plugins(["no_such_plugin_module"])


@pytest.mark.parametrize(("plugin", "expected"), [
    ("no_such_plugin_module", "cannot import 'no_such_plugin_module'"),
    ("json", "unknown measure 'loo_ridge_r2'"),  # imports, registers nothing: the measure is still unknown
])
def test_bad_plugin_config_fails_before_ray(tmp_path, plugin, expected):
    started = time.monotonic()
    result = layerwise("run", "--config", str(TINY), "--out", str(tmp_path / "out"),
                       "--set", f"analysis.plugins=[{plugin}]", "--set", "analysis.measures=[linear_cka, loo_ridge_r2]",
                       timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("layerwise: error:") and expected in lines[-1], lines
    assert time.monotonic() - started < 30 and not (tmp_path / "out" / "models").exists()


def test_plugin_measure_runs_on_the_workers_into_similarity(tiny_run, tmp_path):
    """The example plugin, importable by the driver only (sys.path, not PYTHONPATH): the analysis
    workers get it because the job ships it (py_modules), and its rows land in similarity.parquet."""
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    plugins = _plugin(tmp_path / "plugins", "user_measures", EXAMPLE.read_text())
    driver = (f"import sys; sys.path.insert(0, {str(plugins)!r}); from runner.cli import main; "
              f"sys.exit(main(['analyze', '--config', {str(TINY)!r}, '--out', {str(out)!r}, "
              "'--set', 'analysis.plugins=[user_measures]', "
              "'--set', 'analysis.measures=[linear_cka, loo_ridge_r2, pca99]']))")
    result = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sim = pl.read_parquet(out / "similarity.parquet")
    ridge = sim.filter(pl.col("measure") == "loo_ridge_r2")
    cka = sim.filter(pl.col("measure") == "linear_cka")
    keys = ["experimental", "control", "task", "layer"]
    assert ridge.height == cka.height > 0
    assert ridge.select(keys).sort(keys).equals(cka.select(keys).sort(keys))  # every pair, task and layer
    assert ridge["value"].is_finite().all() and (ridge["value"] <= 1.0).all()
