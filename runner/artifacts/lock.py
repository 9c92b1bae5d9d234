"""One run per output folder: an exclusive lock on `<out>/.layerwise.lock` for the life of a run.

The lock is `flock` on an open file, so the kernel drops it when its process dies, however it
dies: a lock whose process is gone is never held, and the next run takes it over with one note.
The file also records who holds it (pid, host, start time, command line) for the error a second
run gets. On NFSv4 (and EFS) Linux maps `flock` onto whole-file POSIX locks that every client
sees; a crashed client's lock frees itself when the server's lease expires (about 90 s).

Usage, in the CLI, around everything that writes under `<out>`:

    with RunLock(out):
        remove_litter(out)
        ...
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from runner.artifacts.store import ArtifactError

LOCK_NAME = ".layerwise.lock"

log = logging.getLogger("layerwise.lock")

# Locks this process holds, by lock-file path. On NFS, flock is a POSIX lock, which is per
# process and is dropped when *any* descriptor of the file is closed: so this process must
# neither lock the file twice nor open it again while holding it.
_held: dict[str, RunLock] = {}


class RunLockedError(ArtifactError):
    """Another run holds the output folder. A user error: the CLI shows it as one line."""


def _command_line() -> str:
    argv = sys.argv or ["python"]
    program = Path(argv[0]).name
    if program == "__main__.py":
        program = f"python -m {Path(argv[0]).parent.name}"
    line = " ".join([program, *(shlex.quote(arg) for arg in argv[1:])])
    return line if len(line) <= 160 else line[:157] + "..."


def _when(started: float | None) -> str:
    if not started:
        return "at an unknown time"
    stamp = time.localtime(started)
    same_day = time.strftime("%Y-%m-%d", stamp) == time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", stamp)


def _pid_alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, OverflowError):
        return True  # unreadable pid: assume alive rather than blame a child
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _read_holder(fd: int) -> dict:
    with contextlib.suppress(OSError, ValueError):
        raw = os.pread(fd, 65536, 0)
        holder = json.loads(raw) if raw.strip() else {}
        return holder if isinstance(holder, dict) else {}
    return {}


class RunLock:
    """`with RunLock(out):` holds `<out>/.layerwise.lock` exclusively, or raises RunLockedError at once."""

    def __init__(self, out: Path | str, command: str | None = None):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self.command = command or _command_line()
        self.info: dict = {}
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        key = os.path.realpath(self.path)
        if key in _held:
            raise RunLockedError(f"{self.out} is already locked by this process ({_held[key].command}); "
                                 "one run per output folder")
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise RunLockedError(self._busy(holder)) from None
            raise RunLockedError(f"cannot lock {self.path} ({errno.errorcode.get(err.errno, err.errno)}: "
                                 f"{err.strerror}); put --out on a filesystem with file locks") from None
        previous = _read_holder(fd)
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                     "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(self.info) + "\n").encode(), 0)
        os.fsync(fd)  # so a run on another NFS client reads who holds it
        self._fd = fd
        _held[key] = self
        if previous.get("pid"):
            log.info("took over a stale lock from pid %s on %s (a run started %s that did not release it)",
                     previous["pid"], previous.get("host", "an unknown host"), _when(previous.get("started")))
            if previous.get("host") == socket.gethostname():
                stopped = stop_left_behind(previous.get("processes") or [])
                if stopped:
                    log.info("stopped %d process(es) the dead run left behind: %s", len(stopped),
                             ", ".join(map(str, stopped)))
        return self

    def record_processes(self, pids: list[int]) -> None:
        """Write the processes this run started (its local Ray) into the lock file, so that the run
        that takes over a stale lock can stop what a killed run left behind, by PID."""
        import psutil

        if self._fd is None:
            return
        processes = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                processes.append({"pid": pid, "created": psutil.Process(pid).create_time()})
        self.info["processes"] = processes
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(self.info) + "\n").encode(), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _held.pop(os.path.realpath(self.path), None)
        # An empty file means "released cleanly"; the file itself stays, since unlinking a lock
        # file lets two runs lock two different inodes of the same name.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _busy(self, holder: dict) -> str:
        if not holder.get("pid"):
            who = "its details are not written yet"
        else:
            pid, host = holder["pid"], holder.get("host", "an unknown host")
            here = host == socket.gethostname()
            who = (f"pid {pid} on {host}{'' if here else ' (another host)'}, started {_when(holder.get('started'))}: "
                   f"{holder.get('command', '?')}")
            if here and not _pid_alive(pid):
                who += f"; pid {pid} has exited but a process it started still holds the lock (see `fuser -v {self.path}`)"
            elif not here:
                who += f"; if {host} is down, its lock frees itself within about 90 s"
        return f"{self.out} is in use by another layerwise run ({who}); wait for it or pass another --out"


def descendants() -> list[int]:
    """Every living process this one started, directly or not (a local Ray's raylet, GCS, agents)."""
    import psutil

    return [child.pid for child in psutil.Process().children(recursive=True)]


def stop_left_behind(processes: list[dict], grace_s: float = 5.0) -> list[int]:
    """Terminate, then kill, the recorded processes that still run. A PID counts only when its
    creation time matches the record, so a PID the system has since reused is never touched."""
    import psutil

    alive = []
    for record in processes:
        with contextlib.suppress(psutil.Error, KeyError, TypeError, ValueError):
            proc = psutil.Process(int(record["pid"]))
            if abs(proc.create_time() - float(record["created"])) < 0.01:
                alive.append(proc)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=grace_s)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(still, timeout=grace_s)
    return [proc.pid for proc in alive]


def _forget_after_fork() -> None:
    # A forked child (a DataLoader worker, say) must not keep the parent's lock alive after the
    # parent dies: close the inherited descriptors without unlocking (the parent still holds it).
    for lock in list(_held.values()):
        if lock._fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock._fd)
            lock._fd = None
    _held.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
