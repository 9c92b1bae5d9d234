"""Killing a Ray Train worker mid-run: Ray restarts the worker group from the last checkpoint,
the run finishes, and every CKA value equals that of the uninterrupted tiny run."""

import os
import signal
import subprocess
import sys
import time

import polars as pl
import psutil

from tests.conftest import ROOT, TINY


def train_workers(driver: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in driver.children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_killed_worker_changes_no_cka_value(tmp_path, tiny_run):
    driver = subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ))
    killed, deadline = None, time.time() + 600
    try:
        # Wait for E's first reported checkpoint, then kill one of its two workers.
        while killed is None and time.time() < deadline and driver.poll() is None:
            if list((tmp_path / "ray_storage").glob("multitask-*/checkpoint_*")):
                workers = train_workers(psutil.Process(driver.pid))
                if workers:
                    killed = workers[-1].pid
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.2)
        output, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert killed is not None, "never saw a training worker to kill"
    assert driver.returncode == 0, output[-4000:]
    assert "resumed at step" in output

    interrupted = pl.read_parquet(tmp_path / "cka.parquet").sort("experimental", "task", "layer")
    uninterrupted = pl.read_parquet(tiny_run / "cka.parquet").sort("experimental", "task", "layer")
    assert interrupted.select("experimental", "task", "layer").equals(uninterrupted.select("experimental", "task", "layer"))
    assert (interrupted["cka"] - uninterrupted["cka"]).abs().max() == 0.0
