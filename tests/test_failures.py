"""Honest failures, as a user meets them: bad input in one line before Ray starts, damaged
artifacts that heal, Ctrl-C that says what finished, and one run per output folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, TINY, layerwise


@pytest.mark.parametrize(("override", "expected"), [
    ("extraction.probe_size=100000", "exceeds the 192 held-out examples"),
    ("model.name=/nonexistent/dir", "/nonexistent/dir"),
    ("tasks.select=[rte, no_such_task]", "no_such_task"),
    ("analysis.measures=[linear_cka, mutual_knnn]", "did you mean 'mutual_knn'"),
])
def test_bad_input_fails_in_one_line_before_ray_starts(tmp_path, override, expected):
    started = time.monotonic()
    result = layerwise("run", "--config", str(TINY), "--out", str(tmp_path / "out"), "--set", override, timeout=120)
    elapsed = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) <= 3 and "Traceback" not in result.stderr, result.stderr
    assert expected in lines[-1] and lines[-1].startswith("layerwise: error:")
    assert elapsed < 30  # the bar is 15 s on a quiet machine; CI shares its cores
    assert not (tmp_path / "out" / "models").exists()  # nothing started


def test_out_naming_a_file_fails_in_one_line(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    result = layerwise("run", "--config", str(TINY), "--out", str(target), timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is a file" in result.stderr


def _markers(out: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["finished"] for p in (out / "models").glob("*/_SUCCESS.json")}


def _truncate(file: Path, size: int) -> None:
    file.write_bytes(file.read_bytes()[:size])


# What heals is the models and the activations: scores and t-SNE, which no CKA value depends on,
# are left out of the re-run (neither is part of a model's or the activations' key).
QUICK = ["--set", "evaluation.enabled=false", "--set", "analysis.tsne=false"]


def _rerun_and_compare(out: Path, before: pl.DataFrame):
    result = layerwise("run", "--config", str(TINY), "--out", str(out), *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = pl.read_parquet(out / "cka.parquet")
    assert fresh.select("experimental", "task", "layer").equals(before.select("experimental", "task", "layer"))
    assert (fresh["cka"] - before["cka"]).abs().max() <= 1e-6
    return result


@pytest.fixture(scope="module")
def healed(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> dict:
    """A copy of the tiny run with one control's adapter cut to 100 bytes and one activations file cut in
    half, run again (one run heals both; each test below reads what it promises)."""
    out = tmp_path_factory.mktemp("damaged") / "copy"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("ray_storage"))
    before, finished = pl.read_parquet(out / "cka.parquet"), _markers(out)
    adapter = next((out / "models").glob("control-rte-[0-9a-f]*/adapter_model.safetensors"))
    activations = sorted((out / "activations").glob("*/*.parquet"))[0]
    _truncate(adapter, 100)
    _truncate(activations, activations.stat().st_size // 2)
    result = _rerun_and_compare(out, before)
    return {"stderr": result.stderr, "adapter": adapter, "activations": activations, "finished": finished,
            "after": _markers(out)}


def test_a_damaged_adapter_is_named_and_only_its_model_retrained(healed):
    """The run names the cut adapter, retrains that control only, re-extracts, and the rebuilt model
    gives the same CKA values (checked in the fixture)."""
    adapter = healed["adapter"]
    named = [line for line in healed["stderr"].splitlines() if adapter.name in line and "expected" in line]
    assert len(named) == 1 and adapter.parent.name in named[0]
    finished, after = healed["finished"], healed["after"]
    assert [m for m in finished if after[m] != finished[m]] == [adapter.parent.name]  # that control only


def test_damaged_activations_are_named_and_re_extracted(healed):
    """The run names the cut activations file, re-extracts without retraining any model for it, and
    reproduces the CKA values (checked in the fixture)."""
    activations = healed["activations"]
    named = [line for line in healed["stderr"].splitlines() if activations.name in line]
    assert len(named) == 1 and "rebuilt" in named[0], healed["stderr"]  # size or structure: either names it
    finished, after = healed["finished"], healed["after"]
    # Only the control whose adapter was cut retrained: the activations' damage retrains nothing.
    assert {m for m in finished if after[m] != finished[m]} == {healed["adapter"].parent.name}


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(out)],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_a_trained_model(proc: subprocess.Popen, timeout: float = 600, until: str = "best val loss") -> None:
    """Read the process's stderr until its first model has finished training (or the line holding `until`)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if until in line:
            return
    raise AssertionError(f"no line with {until!r}:\n" + "".join(lines))


@pytest.mark.usefixtures("real_run")
def test_second_run_is_refused_and_ctrl_c_stops_the_first_honestly(tmp_path):
    out = tmp_path / "out"
    first = _start(out)
    _wait_for_a_trained_model(first)

    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(out)],
                            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 30
    assert second.returncode != 0
    assert len(second.stderr.strip().splitlines()) == 1 and "in use by another layerwise run" in second.stderr
    assert f"pid {first.pid}" in second.stderr

    interrupted = time.monotonic()
    first.send_signal(signal.SIGINT)
    _, rest = first.communicate(timeout=120)
    assert first.returncode == 130
    assert time.monotonic() - interrupted < 60
    after = rest.split("interrupted", 1)
    assert len(after) == 2, rest
    assert "re-run the same command to resume" in after[1]
    assert "== evaluate ==" not in after[1]  # no later stage starts
    assert "models trained" in after[1]


@pytest.mark.parametrize(("override", "expected"), [
    ("analysis.measures=[nosuch_measure]", "unknown measure 'nosuch_measure'"),
    ("model.name=/nonexistent", "model.name '/nonexistent': no such folder"),
    ("tasks.data_dir=/nonexistent-data", "tasks.data_dir '/nonexistent-data': no such folder"),
])
def test_dry_run_makes_the_checks_a_run_makes(tmp_path, override, expected):
    extra = ["--set", "tasks.source=hub"] if "data_dir" in override else []
    result = layerwise("run", "--dry-run", "--config", str(TINY), "--out", str(tmp_path / "out"), "--set", override,
                       *extra, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "Traceback" not in result.stderr and lines[-1].startswith("layerwise: error:") and expected in lines[-1]
    assert not (tmp_path / "out").exists()


def test_dry_run_names_an_out_it_cannot_write(tmp_path):
    result = layerwise("run", "--dry-run", "--config", str(TINY), "--out", "/proc/nope", timeout=120)
    assert result.returncode == 2 and "Errno" not in result.stderr
    assert "--out /proc/nope" in result.stderr and "writable folder" in result.stderr


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    result = layerwise("run", "--dry-run", "--config", str(TINY), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("train:", "evaluate:", "extract:", "analyze:"):
        assert any(line.startswith(stage) for line in result.stdout.splitlines()), result.stdout
    assert "[todo]" in result.stdout and not (tmp_path / "out").exists()


def test_an_empty_config_file_says_it_is_empty(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n# nothing here\n")
    result = layerwise("run", "--dry-run", "--config", str(empty), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and "the config file is empty" in result.stderr and str(empty) in result.stderr


def test_tasks_lists_the_registry_and_writes_its_catalog(tmp_path):
    import tasks as suite

    result = layerwise("tasks", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    catalog = pl.read_parquet(tmp_path / "tasks.parquet")
    assert catalog.height == len(suite.resolve_tasks("all"))
    assert f"{catalog.height} tasks in {catalog['cluster'].n_unique()} clusters" in result.stdout
    assert all(name in result.stdout for name in catalog["task"].head(5))


def _start_sweep(out: Path) -> subprocess.Popen:
    from tests.test_sweep import SMALL

    return subprocess.Popen([sys.executable, "-m", "runner", "sweep", "--config", str(TINY), "--out", str(out),
                             "--seeds", "0,1", *SMALL], cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.usefixtures("real_run")
def test_a_sweep_holds_its_out_and_ctrl_c_says_what_finished(tmp_path):
    out = tmp_path / "sweep"
    first = _start_sweep(out)
    # Interrupted while its workers start (the run's own Ctrl-C test waits for a trained model).
    _wait_for_a_trained_model(first, until="Ray Train runs")

    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "runner", "sweep", "--config", str(TINY), "--out", str(out),
                             "--seeds", "0,1"], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                            timeout=120)
    assert time.monotonic() - started < 30
    assert second.returncode == 2 and "in use by another layerwise run" in second.stderr, second.stderr
    assert f"pid {first.pid}" in second.stderr and ".layerwise.lock" not in second.stdout

    first.send_signal(signal.SIGINT)
    _, rest = first.communicate(timeout=120)
    assert first.returncode == 130, rest[-2000:]
    after = rest.split("interrupted", 1)
    assert len(after) == 2, rest
    assert "0 of 2 cells" in after[1] and "models trained" in after[1]
    assert "re-run the same command to resume" in after[1]
