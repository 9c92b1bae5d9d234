"""The artifact store on real files: verified markers, damage reports, the run lock, litter, Ray errors."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import load_file, save_file

from runner.artifacts import store
from runner.artifacts.lock import RunLock, RunLockedError, stop_left_behind
from runner.artifacts.store import (
    SUCCESS,
    ArtifactError,
    atomic_dir,
    check_done,
    is_done,
    loading,
    mark_done,
    read_parquet,
    remove_litter,
)
from runner.ops.errors import one_line

ROOT = Path(__file__).resolve().parent.parent


def _adapter(folder: Path) -> Path:
    """A peft-shaped adapter folder with a real safetensors file."""
    folder.mkdir(parents=True)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(8, 64),
               "base_model.model.layers.0.q_proj.lora_B.weight": torch.zeros(64, 8)},
              folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    pl.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.5, 2.0]}).write_parquet(folder / "curve.parquet")
    return folder


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "layerwise.store" and r.levelno == logging.WARNING]


# --- verified markers -----------------------------------------------------------------------------


def test_marker_vouches_for_every_file(tmp_path: Path):
    folder = _adapter(tmp_path / "models" / "control-rte-abc")
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_text("nested files count too")
    mark_done(folder, "abc", best_val_loss=1.5)
    marker = json.loads((folder / SUCCESS).read_text())
    assert marker["key"] == "abc" and marker["best_val_loss"] == 1.5  # callers read info at the top level
    assert set(marker["files"]) == {"adapter_model.safetensors", "adapter_config.json", "curve.parquet", "sub/notes.txt"}
    assert marker["files"]["curve.parquet"]["size"] == (folder / "curve.parquet").stat().st_size
    state = check_done(folder, "abc")
    assert state and state.verified and state.state == "done" and state.marker["best_val_loss"] == 1.5
    assert is_done(folder, "abc")
    assert check_done(tmp_path / "nowhere", "abc").state == "absent"


def test_truncated_safetensors_is_named_once_and_counts_as_not_done(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _adapter(Path("models") / "control-rte-abc")
    weights = folder / "adapter_model.safetensors"
    full = weights.stat().st_size
    mark_done(folder, "abc")
    _truncate(weights, 100)

    state = check_done(folder, "abc")
    assert state.state == "damaged" and not state
    assert state.problem == f"models/control-rte-abc/adapter_model.safetensors: 100 bytes, expected {full:,}"
    with caplog.at_level(logging.WARNING, logger="layerwise.store"):
        assert not is_done(folder, "abc")
        assert not is_done(folder, "abc")  # a second caller in the same run does not repeat the warning
    [warning] = _warnings(caplog)
    assert "models/control-rte-abc/adapter_model.safetensors: 100 bytes, expected" in warning
    assert "\n" not in warning

    # Loading it fails the way the user saw it, now as one line that names the file and the way out.
    with pytest.raises(ArtifactError) as caught, loading(folder, "adapter control-rte"):
        load_file(weights)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"models/control-rte-abc/adapter_model.safetensors: 100 bytes, expected {full:,}")
    assert "SafetensorError" in message and "re-run to rebuild it, or delete models/control-rte-abc" in message


def test_same_size_damage_is_caught(tmp_path):
    folder = _adapter(tmp_path / "m")
    mark_done(folder, "k")
    config = folder / "adapter_config.json"
    config.write_text(config.read_text().replace('"r": 8', '"r": 9'))  # same length, new bytes
    state = check_done(folder, "k")
    assert state.state == "damaged" and state.problem.endswith("adapter_config.json: contents changed since it was finished")
    config.write_text(config.read_text().replace('"r": 9', '"r": 8'))
    assert check_done(folder, "k").verified
    (folder / "curve.parquet").unlink()
    assert "curve.parquet: missing" in check_done(folder, "k").problem


def test_parquet_cut_in_half(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    activations = Path("activations") / "k1"
    activations.mkdir(parents=True)
    for part in range(2):
        pl.DataFrame({"example_id": [f"e{i}" for i in range(500)], "task": "rte", "layer": part,
                      "vector": [[float(i)] * 16 for i in range(500)]}).write_parquet(activations / f"{part}.parquet")
    mark_done(activations, "k1")
    broken = activations / "1.parquet"
    size = broken.stat().st_size
    _truncate(broken, size // 2)

    assert check_done(activations, "k1").problem == f"activations/k1/1.parquet: {size // 2:,} bytes, expected {size:,}"
    assert not is_done(activations, "k1")
    with pytest.raises(ArtifactError) as caught, loading(activations, "activations"):
        pl.scan_parquet(activations / "*.parquet").filter(pl.col("task") == "rte").collect()
    assert str(caught.value).startswith("activations/k1/1.parquet: ")
    assert "re-run to rebuild it" in str(caught.value) and "\n" not in str(caught.value)

    # A lone frame with no marker: still one line, naming the file and what is wrong with it.
    frame = Path("cka.parquet")
    pl.DataFrame({"layer": list(range(1000)), "cka": [0.5] * 1000}).write_parquet(frame)
    _truncate(frame, frame.stat().st_size // 2)
    with pytest.raises(ArtifactError) as caught:
        read_parquet(frame, "CKA frame")
    message = str(caught.value)
    assert message.startswith("cka.parquet: not a complete Parquet file") and "no PAR1 at the end" in message
    assert message.endswith("delete cka.parquet and re-run its stage")
    with pytest.raises(ArtifactError, match="missing CKA frame"):
        read_parquet(Path("pca.parquet"), "CKA frame")


def test_big_files_get_a_structural_check_and_read_only_their_edges(tmp_path, monkeypatch):
    # Scale the thresholds down so that real small files take the big-file path.
    monkeypatch.setattr(store, "FULL_HASH_MAX", 1024)
    monkeypatch.setattr(store, "EDGE", 256)
    folder = _adapter(tmp_path / "m")
    blob = folder / "cache.bin"
    with open(blob, "wb") as handle:  # a sparse 64 MiB file: big on paper, cheap on disk
        handle.truncate(64 * 2**20)
    mark_done(folder, "k")
    files = json.loads((folder / SUCCESS).read_text())["files"]
    assert files["adapter_model.safetensors"]["format"] == "safetensors" and files["cache.bin"]["hashed"] == "edges"

    read = []
    real_open = open

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, n=-1):
            data = self.handle.read(n)
            read.append(len(data))
            return data

        def seek(self, *args):
            return self.handle.seek(*args)

    monkeypatch.setattr(store, "open", lambda path, mode="r": Counting(real_open(path, mode)), raising=False)
    assert check_done(folder, "k").verified
    assert sum(read) < 70_000  # the 64 MiB file costs 2 x 256 bytes; the rest are the small files and headers
    monkeypatch.undo()

    # Same-size damage to a big safetensors file is caught by its header check.
    monkeypatch.setattr(store, "FULL_HASH_MAX", 1024)
    weights = folder / "adapter_model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[8:12] = b"@@@@"  # the JSON header no longer parses
    weights.write_bytes(bytes(raw))
    assert check_done(folder, "k").problem.endswith("adapter_model.safetensors: unreadable safetensors header")


def test_mark_done_refuses_a_broken_file_and_vouches_for_outside_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    bad = out / "analysis" / "x.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ArtifactError, match="x.parquet: .*refusing to mark it finished"):
        mark_done(bad.parent, "k")
    bad.unlink()

    cka = out / "cka.parquet"
    pl.DataFrame({"cka": [0.1, 0.2]}).write_parquet(cka)
    mark_done(out / "analysis", "k", files=[cka])
    assert json.loads((out / "analysis" / SUCCESS).read_text())["files"] == {
        "../cka.parquet": {"size": cka.stat().st_size, "blake2b": store._hash(cka, cka.stat().st_size)}}
    assert is_done(out / "analysis", "k")
    cka.unlink()
    assert check_done(out / "analysis", "k").problem.endswith("cka.parquet: missing")


def test_old_stale_and_unreadable_markers(tmp_path, caplog):
    folder = _adapter(tmp_path / "m")
    (folder / SUCCESS).write_text(json.dumps({"key": "k", "finished": 1.0}))  # written before files were recorded
    state = check_done(folder, "k")
    assert state.done and not state.verified
    with caplog.at_level(logging.WARNING, logger="layerwise.store"):
        assert not is_done(folder, "other")  # stale: a normal config change, not worth a warning
    assert check_done(folder, "other").state == "stale" and not _warnings(caplog)

    _truncate(folder / "adapter_model.safetensors", 100)  # an old marker still gets the structural check
    assert "adapter_model.safetensors: 100 bytes, but its safetensors header" in check_done(folder, "k").problem

    (folder / SUCCESS).write_text("{not json")
    state = check_done(folder, "k")
    assert state.state == "damaged" and "unreadable marker (JSONDecodeError)" in state.problem


def test_atomic_dir_replaces_without_litter(tmp_path):
    final = tmp_path / "unit"
    for content in ("one", "two"):
        with atomic_dir(final) as tmp:
            (tmp / "data.txt").write_text(content)
    assert (final / "data.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit"]


# --- the run lock ---------------------------------------------------------------------------------


def _holder(out: Path, *, then: str = "time.sleep(60)") -> subprocess.Popen:
    """A real process holding RunLock(out); returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from runner.artifacts.lock import RunLock
        lock = RunLock({str(out)!r}, command="layerwise run --out {out.name}").acquire()
        print("ready", flush=True)
        {then}
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_second_run_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "demo"
    proc = _holder(out)
    try:
        started = time.monotonic()
        with pytest.raises(RunLockedError) as caught:
            RunLock(out).acquire()
        assert time.monotonic() - started < 1.0
        message = str(caught.value)
        assert f"pid {proc.pid} on {socket.gethostname()}, started " in message
        assert "layerwise run --out demo" in message
        assert message.startswith(f"{out} is in use by another layerwise run (")
        assert message.endswith("; wait for it or pass another --out") and "\n" not in message
        assert isinstance(caught.value, ArtifactError)  # the CLI already shows these as one line
    finally:
        proc.kill()
        proc.wait()


def test_holder_on_another_host_is_named_as_such(tmp_path):
    # A lock held over NFS by a run on another machine: only the message differs.
    message = RunLock(tmp_path / "demo")._busy({"pid": 4242, "host": "host-a", "started": time.time(),
                                                "command": "layerwise run"})
    assert "(pid 4242 on host-a (another host), started " in message and ": layerwise run; if host-a is down" in message


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "demo"
    proc = _holder(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.INFO, logger="layerwise.lock"):
        with RunLock(out) as lock:
            assert json.loads((out / ".layerwise.lock").read_text())["pid"] == os.getpid()
            with pytest.raises(RunLockedError, match="already locked by this process"):
                RunLock(out).acquire()
    notes = [r.getMessage() for r in caplog.records if r.name == "layerwise.lock"]
    assert len(notes) == 1 and notes[0].startswith(f"took over a stale lock from pid {proc.pid} on {socket.gethostname()}")
    assert not lock.held and (out / ".layerwise.lock").read_text() == ""  # released cleanly: nothing stale
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="layerwise.lock"), RunLock(out):
        pass
    assert not caplog.records


def test_take_over_stops_what_the_killed_run_left_behind_by_pid(tmp_path):
    # The holder starts a child in its own session (as ray.init starts its agents), records it in
    # the lock, and is killed: the child is re-parented to init and lives on.
    out = tmp_path / "demo"
    proc = _holder(out, then=textwrap.dedent("""
        import subprocess
        from runner.artifacts.lock import descendants
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
        lock.record_processes(descendants())
        print(child.pid, flush=True)
        time.sleep(60)
    """).replace("\n", "\n        "))
    child = int(proc.stdout.readline())
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # not recorded
    try:
        recorded = json.loads((out / ".layerwise.lock").read_text())["processes"]
        assert [r["pid"] for r in recorded] == [child]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # still alive after its run died
        with RunLock(out):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(child):
            time.sleep(0.1)
        assert not _running(child)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_a_reused_pid_is_never_stopped(tmp_path):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert stop_left_behind([{"pid": victim.pid, "created": 1.0}]) == []  # creation time differs
        assert victim.poll() is None
    finally:
        victim.kill()


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- litter -------------------------------------------------------------------------------------


def test_litter_of_a_killed_run_is_removed_and_artifacts_kept(tmp_path):
    out = tmp_path / "demo"
    done = _adapter(out / "models" / "control-rte-abc")
    mark_done(done, "abc")
    pl.DataFrame({"cka": [0.5]}).write_parquet(out / "cka.parquet")
    (out / ".git").mkdir()
    (out / ".git" / ".index.abcdefgh").write_text("not ours: hidden folders are never entered")
    (out / ".hidden-notes").write_text("not a temp name")

    writer = _holder(out, then=textwrap.dedent(f"""
        import tempfile
        from pathlib import Path
        from runner.artifacts.store import atomic_dir
        out = Path({str(out)!r})
        tempfile.mkstemp(dir=out, prefix=".manifest.json.")  # as atomic_write_text leaves it
        (out / "cache").mkdir()
        tempfile.mkdtemp(dir=out / "cache", prefix=".build-")  # as a model build leaves it
        with atomic_dir(out / "activations" / "k1") as tmp:
            (tmp / "part-0.parquet").write_bytes(b"PAR1 half written")
            print("inside", flush=True)
            time.sleep(60)
    """).replace("\n", "\n        "))
    assert writer.stdout.readline().strip() == "inside"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    litter = [*out.glob(".manifest.json.*"), *out.glob("cache/.build-*"), *out.glob("activations/.k1.*")]
    assert len(litter) == 3 and (litter[2] / "part-0.parquet").exists()

    with RunLock(out):  # takes over the killed writer's stale lock
        removed = remove_litter(out)
    assert sorted(removed) == sorted(litter) and not any(p.exists() for p in litter)
    assert not (out / "activations" / "k1").exists() and (out / "activations").is_dir()
    assert is_done(done, "abc") and check_done(done, "abc").verified
    assert (out / "cka.parquet").exists() and (out / ".git" / ".index.abcdefgh").exists() and (out / ".hidden-notes").exists()
    assert remove_litter(out) == []


# --- errors from inside Ray -----------------------------------------------------------------------


def test_one_line_unwraps_chains_and_train_wrappers():
    from ray.train import ControllerError, WorkerGroupError

    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as err:
            raise RuntimeError("saving the adapter failed\nmore detail") from err
    except RuntimeError as err:
        assert one_line(err) == "OSError: [Errno 28] No space left on device"

    try:
        try:
            raise ValueError("invalid header length")
        except ValueError as err:
            raise ArtifactError("m/adapter_model.safetensors: 100 bytes, expected 21,544; re-run") from err
    except ArtifactError as err:
        assert one_line(err) == "ArtifactError: m/adapter_model.safetensors: 100 bytes, expected 21,544; re-run"

    group = WorkerGroupError("[Rank 1] boom", {1: KeyError("lora_A"), 0: MemoryError("CUDA out of memory\nTried")})
    assert one_line(group) == "MemoryError: CUDA out of memory"
    assert one_line(ControllerError(TimeoutError("workers did not start"))) == "TimeoutError: workers did not start"

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert one_line(Unprintable()) == "Unprintable"


def test_errors_module_does_not_import_ray():
    code = "import sys, runner.ops.errors, runner.artifacts.lock; assert not any(m.split('.')[0] == 'ray' for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_one_line_on_real_ray_errors(local_ray):
    ray = local_ray

    @ray.remote
    def fails():
        raise ValueError("boom\nsecond line")

    @ray.remote
    def damaged():
        raise ArtifactError("models/c/adapter_model.safetensors: 100 bytes, expected 21,544; re-run to rebuild it")

    @ray.remote
    class Extractor:
        def __init__(self):
            raise KeyError("lora_A")

        def ping(self):
            return 1

    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        ray.get(fails.remote())
    line = one_line(caught.value)
    assert line.startswith("ValueError: boom (worker log: ") and "\n" not in line
    log_path = Path(line.split("(worker log: ")[1].rstrip(")"))
    assert log_path.is_file() and log_path.name.startswith("worker-")

    with pytest.raises(ray.exceptions.RayTaskError) as caught:
        ray.get(damaged.remote())
    assert one_line(caught.value).startswith("ArtifactError: models/c/adapter_model.safetensors: 100 bytes, expected 21,544")

    with pytest.raises(ray.exceptions.RayActorError) as caught:
        ray.get(Extractor.remote().ping.remote())
    assert one_line(caught.value).startswith("KeyError: 'lora_A' (worker log: ")
