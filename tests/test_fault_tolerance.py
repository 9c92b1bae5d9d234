"""Killing a Ray Train worker mid-run: Ray restarts the worker group from the last checkpoint,
the run finishes, and every CKA value equals that of the uninterrupted tiny run.

The run starts from the session tiny run's controls (copied; their keys match), so only E, the
model whose worker is killed, trains here; scores and t-SNE, which no CKA value depends on, are off.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil

from tests.conftest import ROOT, TINY

# Each training worker announces itself: "[multitask] rank 1/2 pid 12345 on host, cpu, 1 model(s)".
# Workers' output reaches the driver's terminal, or (with a quiet console) each worker's own stdout
# file, which the run copies to <out>/logs/ when it ends.
WORKER_LINE = re.compile(r"\[multitask\] rank 1/2 pid (\d+)")
# None changes a model's or the activations' key, nor a CKA value. E keeps its own Ray Train run
# (its workers announce themselves as [multitask]), as in the tiny run, where the controls fill the queue.
QUICK = ["--set", "evaluation.enabled=false", "--set", "analysis.tsne=false", "--set", "resources.job_queue=false"]


def _worker_output(lines: list[str], driver: subprocess.Popen, out: Path) -> str:
    """The driver's output, the live workers' stdout files (Ray starts them under the driver) and
    the logs the run has copied so far."""
    texts, files = ["".join(lines)], set()
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(driver.pid).children(recursive=True):
            with contextlib.suppress(OSError):
                files.add(Path(os.readlink(f"/proc/{child.pid}/fd/1")))
    if (out / "logs").is_dir():
        files |= set((out / "logs").rglob("*.out")) | set((out / "logs").glob("console.log"))
    for path in sorted(files):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.is_file() and path.suffix in (".out", ".log"):
                texts.append(path.read_text(errors="replace"))
    return "".join(texts)


def test_killed_worker_changes_no_cka_value(tmp_path, tiny_run):
    out = tmp_path / "out"
    for control in (tiny_run / "models").glob("control-*"):
        shutil.copytree(control, out / "models" / control.name)
    controls = {p: p.read_text() for p in (out / "models").glob("*/_SUCCESS.json")}
    driver = subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(out), *QUICK],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True)
    reader.start()
    killed, deadline = None, time.time() + 600
    try:
        # Once Ray Train has registered E's first checkpoint (its snapshot file appears), SIGKILL
        # E's second worker.
        while killed is None and time.time() < deadline and driver.poll() is None:
            pids = [int(m) for m in WORKER_LINE.findall(_worker_output(list(lines), driver, out))]
            if pids and list((out / "ray_storage").glob("multitask-*/checkpoint_manager_snapshot.json")):
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        driver.wait(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
        reader.join(timeout=10)
    log = _worker_output(lines, driver, out)
    (tmp_path / "driver.log").write_text(log)
    assert killed is not None, f"never saw E's second worker; log tail:\n{log[-3000:]}"
    assert driver.returncode == 0, log[-4000:]
    assert "[multitask] resumed at step" in log, log[-4000:]
    assert {p: p.read_text() for p in controls} == controls  # only E trained here

    interrupted = pl.read_parquet(out / "cka.parquet").sort("experimental", "task", "layer")
    uninterrupted = pl.read_parquet(tiny_run / "cka.parquet").sort("experimental", "task", "layer")
    keys = ["experimental", "task", "layer"]
    assert interrupted.select(keys).equals(uninterrupted.select(keys))
    assert (interrupted["cka"] - uninterrupted["cka"]).abs().max() == 0.0
