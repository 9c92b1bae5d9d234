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


def _rerun_and_compare(out: Path, before: pl.DataFrame):
    result = layerwise("run", "--config", str(TINY), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = pl.read_parquet(out / "cka.parquet")
    assert fresh.select("experimental", "task", "layer").equals(before.select("experimental", "task", "layer"))
    assert (fresh["cka"] - before["cka"]).abs().max() <= 1e-6
    return result


def test_a_damaged_adapter_is_named_and_only_its_model_retrained(tmp_path, tiny_run):
    """One control's adapter cut to 100 bytes and the activations deleted: the run names the file,
    retrains that control only, re-extracts, and the rebuilt model gives the same CKA values."""
    out = tmp_path / "copy"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("ray_storage"))
    before, finished = pl.read_parquet(out / "cka.parquet"), _markers(out)
    adapter = next((out / "models").glob("control-rte-[0-9a-f]*/adapter_model.safetensors"))
    _truncate(adapter, 100)
    shutil.rmtree(out / "activations")

    result = _rerun_and_compare(out, before)
    named = [line for line in result.stderr.splitlines() if adapter.name in line and "expected" in line]
    assert len(named) == 1 and adapter.parent.name in named[0]
    after = _markers(out)
    assert [m for m in finished if after[m] != finished[m]] == [adapter.parent.name]  # that control only


def test_damaged_activations_are_named_and_re_extracted(tmp_path, tiny_run):
    """An activations file cut in half (models intact): the run names it, re-extracts without
    retraining anything, and reproduces the CKA values."""
    out = tmp_path / "copy"
    shutil.copytree(tiny_run, out, ignore=shutil.ignore_patterns("ray_storage"))
    before, finished = pl.read_parquet(out / "cka.parquet"), _markers(out)
    activations = sorted((out / "activations").glob("*/*.parquet"))[0]
    _truncate(activations, activations.stat().st_size // 2)

    result = _rerun_and_compare(out, before)
    named = [line for line in result.stderr.splitlines() if activations.name in line]
    assert len(named) == 1 and "rebuilt" in named[0], result.stderr  # size or structure: either names it
    assert _markers(out) == finished  # no model retrained


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(out)],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_run_is_refused_and_ctrl_c_stops_the_first_honestly(tmp_path):
    out = tmp_path / "out"
    first = _start(out)
    lines: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # wait for the first finished model
        line = first.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "best val loss" in line:
            break
    assert any("best val loss" in line for line in lines), "".join(lines)

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
