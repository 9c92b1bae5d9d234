"""The cluster path for real: a local `ray start --head` on 127.0.0.1 with token authentication on,
and the tiny experiment submitted to it with `ray job submit --working-dir .`, as docs/cluster.md
tells users to do on AWS.

The head is private to this module: its own ports, its own --temp-dir and its own token (passed as
RAY_AUTH_TOKEN, so ~/.ray/auth_token is neither read nor written). It is stopped through its own
process and the processes that carry this module's marker, never with `ray stop`, which would end
every Ray instance on the machine.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from runner.config import load_config
from tests.conftest import ROOT, TINY

BIN = Path(sys.executable).parent  # the venv's bin: its `ray`, `python` and `layerwise`
RAY = str(BIN / "ray")
MARKER = "LAYERWISE_TEST_RAY_HEAD"
TASKS = ["rte", "trec"]


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries this head's marker: the head's daemons, its workers
    and the job driver (all inherit the environment of `ray start`)."""
    pids = []
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


class Head:
    """A local Ray head, started from the venv's `ray`, reachable only on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        # Short path: Ray's unix sockets live under --temp-dir and are limited to 107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="lwray-", dir="/tmp"))
        self.marker = secrets.token_hex(8)
        self.token = secrets.token_hex(32)
        (self.gcs_port, self.dashboard_port, self.client_port, self.agent_http, self.agent_grpc,
         self.runtime_env_port, self.metrics_port) = _free_ports(7)
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self.log = root / "head.log"
        self.proc: subprocess.Popen | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the head and of every client: token auth on, the token from the env."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAY_") and k not in ("LAYERWISE_CACHE", "HF_HOME")}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", RAY_AUTH_MODE="token",
                   RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
        env.update(extra)
        return env

    def start(self) -> None:
        cmd = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={self.gcs_port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={self.client_port}",
               f"--dashboard-agent-listen-port={self.agent_http}", f"--dashboard-agent-grpc-port={self.agent_grpc}",
               f"--runtime-env-agent-port={self.runtime_env_port}", f"--metrics-export-port={self.metrics_port}",
               "--num-cpus=2", "--num-gpus=0", f"--object-store-memory={512 * 1024 ** 2}",
               f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        with open(self.log, "w") as log:
            # No drain on SIGTERM (Ray's default waits up to 30 s for a Serve proxy this head never runs).
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True,
                                         env=self.env(**{MARKER: self.marker, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}))
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.http_status("/api/jobs/", self.token) == 200:
                return
            time.sleep(1)
        raise TimeoutError(f"the dashboard at {self.url} did not answer in 180 s:\n{self.log.read_text()[-3000:]}")

    def http_status(self, path: str, token: str | None) -> int | None:
        request = urllib.request.Request(self.url + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None

    def ray(self, *args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
        # Run from the repository root: `--working-dir .` uploads the checkout, as a user would.
        return subprocess.run([RAY, *args], cwd=ROOT, env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        """Stop this head only: SIGTERM to `ray start --block` (it tears its node down), then
        SIGTERM and at last SIGKILL to whatever still carries this head's marker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked_pids(self.marker):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 5
            while _marked_pids(self.marker) and time.time() < deadline:
                time.sleep(0.5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory, real_run):
    if shutil.which("ray", path=str(BIN)) is None:
        pytest.skip("the venv has no `ray` CLI")
    local = Head(tmp_path_factory.mktemp("ray-head"))
    try:
        local.start()
        yield local
    finally:
        local.stop()
        assert not _marked_pids(local.marker), "processes of the test's Ray head survived stop()"


def test_token_auth_is_enforced(head: Head):
    assert head.http_status("/api/jobs/", None) == 401
    assert head.http_status("/api/jobs/", "not-the-token") == 403
    assert head.http_status("/api/jobs/", head.token) == 200
    good, bad = head.root / "token", head.root / "wrong-token"
    good.write_text(head.token)
    bad.write_text("0" * 64)

    def job_list(**env: str | None) -> int:
        full = head.env()
        for key, value in env.items():
            if value is None:
                full.pop(key)
            else:
                full[key] = value
        return head.ray("job", "list", "--address", head.url, env=full).returncode

    # The ways docs/cluster.md gives the CLI its token: the value, or a file (what cluster.yaml uses).
    assert job_list() == 0
    assert job_list(RAY_AUTH_TOKEN=None, RAY_AUTH_TOKEN_PATH=str(good)) == 0
    # RAY_AUTH_TOKEN wins over RAY_AUTH_TOKEN_PATH; a wrong token is refused.
    assert job_list(RAY_AUTH_TOKEN_PATH=str(bad)) == 0
    assert job_list(RAY_AUTH_TOKEN=None, RAY_AUTH_TOKEN_PATH=str(bad)) != 0
    assert job_list(RAY_AUTH_TOKEN="not-the-token") != 0
    # Without RAY_AUTH_MODE=token the CLI sends no token at all, even when it has one.
    assert job_list(RAY_AUTH_MODE=None) != 0


def _submit(head: Head, job_id: str, runtime_env: dict, *entrypoint: str, timeout: int) -> subprocess.CompletedProcess:
    return head.ray("job", "submit", "--address", head.url, "--submission-id", job_id, "--working-dir", ".",
                    "--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint, timeout=timeout)


def _status(head: Head, job_id: str) -> str:
    request = urllib.request.Request(f"{head.url}/api/jobs/{job_id}",
                                     headers={"Authorization": f"Bearer {head.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["status"]


def test_job_code_comes_from_the_uploaded_working_dir(head: Head):
    probe = ("import os, pathlib, runner, sys; print('RUNNER=' + runner.__file__); print('PYTHON=' + sys.executable); "
             "print('TOP=' + ','.join(sorted(os.listdir('.')))); "
             "print('BYTES=%d' % sum(p.stat().st_size for p in pathlib.Path('.').rglob('*') if p.is_file()))")
    result = _submit(head, "layerwise-probe", {}, "python", "-c", probe, timeout=300)
    assert _status(head, "layerwise-probe") == "SUCCEEDED", result.stdout[-3000:] + result.stderr[-3000:]
    found = dict(re.findall(r"^(RUNNER|PYTHON|TOP|BYTES)=(.*)$", result.stdout, re.M))
    # The driver imports the uploaded copy (unpacked under the head's temp dir), not the editable
    # checkout, and runs on the python of the `ray` that started the head.
    assert found["RUNNER"].startswith(str(head.temp_dir)), found["RUNNER"]
    assert Path(found["PYTHON"]).parent == BIN, found["PYTHON"]
    # .gitignore plus Ray's default excludes (.git, .venv, __pycache__) keep the package small.
    top = set(found["TOP"].split(","))
    assert {"runner", "tasks", "analysis", "experiments", "pyproject.toml"} <= top, top
    assert not top & {".venv", ".git", "results", ".cache", ".pytest_cache", ".ruff_cache"}, top
    assert int(found["BYTES"]) < 20 * 1024 ** 2, found["BYTES"]


def test_submit_tiny_run(head: Head, tmp_path: Path):
    out = tmp_path / "tiny"
    cache = tmp_path / "cache"
    env_vars = {"LAYERWISE_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                # runner.experiment.connect() re-sends LAYERWISE_CACHE and HF_HUB_OFFLINE in ray.init's
                # runtime_env, and Ray 2.60 refuses a driver that repeats a job's env_vars key unless
                # told to merge. Harmless once connect() skips the keys the job already sets.
                "RAY_OVERRIDE_JOB_RUNTIME_ENV": "1"}
    runtime_env = {"env_vars": env_vars}
    # The cluster path, not the whole study (the shared tiny run covers that): two tasks, no
    # task scores, no reseeded controls, and E in the controls' queue, drained by one lane (one
    # Ray Train run on the head; the shared tiny run covers E on two workers).
    small = ["--set", f"tasks.select=[{','.join(TASKS)}]", "--set", "evaluation.enabled=false",
             "--set", "baseline.seeds=[]", "--set", "analysis.tsne=false",
             "--set", "resources.multitask_workers=1", "--set", "resources.max_concurrent_jobs=1"]
    started = time.time()
    result = _submit(head, "layerwise-tiny", runtime_env, "layerwise", "run", "--config",
                     str(TINY.relative_to(ROOT)), "--out", str(out), *small, timeout=1200)
    status = _status(head, "layerwise-tiny")
    if status != "SUCCEEDED" or result.returncode != 0:
        logs = head.ray("job", "logs", "--address", head.url, "layerwise-tiny").stdout
        pytest.fail(f"job ended {status} after {time.time() - started:.0f} s:\n{logs[-6000:]}\n{result.stderr[-2000:]}")

    config = load_config(TINY)
    cka = pl.read_parquet(out / "cka.parquet")
    layers = range(config.model.tiny.num_layers + 1)
    expected = {(e, t, layer) for e in ("pretrained", "multitask") for t in TASKS for layer in layers}
    assert set(zip(cka["experimental"], cka["task"], cka["layer"])) == expected
    assert cka.height == len(expected) and cka["cka"].is_finite().all()
    # The job built its model in the cache it was given through the runtime env, not in ~/.cache.
    assert any((cache / "models").iterdir())
