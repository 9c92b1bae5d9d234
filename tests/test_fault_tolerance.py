"""Killing a Ray Train worker mid-run: Ray restarts the worker group from the last checkpoint,
the run finishes, and every CKA value equals that of the uninterrupted tiny run."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import polars as pl

from tests.conftest import ROOT, TINY

# Each training worker announces itself: "[multitask] rank 1/2 pid 12345 on host, cpu, 1 model(s)".
WORKER_LINE = re.compile(r"\[multitask\] rank 1/2 pid (\d+)")


def test_killed_worker_changes_no_cka_value(tmp_path, tiny_run):
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(TINY), "--out", str(out)],
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
            pids = [int(m.group(1)) for line in list(lines) if (m := WORKER_LINE.search(line))]
            if pids and list((out / "ray_storage").glob("multitask-*/checkpoint_manager_snapshot.json")):
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        driver.wait(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
        reader.join(timeout=10)
    log = "".join(lines)
    (tmp_path / "driver.log").write_text(log)
    assert killed is not None, f"never saw E's second worker; log tail:\n{log[-3000:]}"
    assert driver.returncode == 0, log[-4000:]
    assert "[multitask] resumed at step" in log, log[-4000:]

    interrupted = pl.read_parquet(out / "cka.parquet").sort("experimental", "task", "layer")
    uninterrupted = pl.read_parquet(tiny_run / "cka.parquet").sort("experimental", "task", "layer")
    keys = ["experimental", "task", "layer"]
    assert interrupted.select(keys).equals(uninterrupted.select(keys))
    assert (interrupted["cka"] - uninterrupted["cka"]).abs().max() == 0.0
