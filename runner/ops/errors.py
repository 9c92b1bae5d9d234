"""One line for an error raised anywhere, with Ray's wrappers peeled off.

An exception from a Ray task, actor, Ray Data UDF, Ray Train worker or Tune trial reaches the
driver wrapped one to four times, and its `str` is a remote traceback. `one_line` walks down to
the error that actually happened and returns `<ExceptionType>: <first line of its message>`,
plus the worker's log file where Ray recorded one.

This module never imports Ray: it is imported by the CLI before Ray starts, and an exception from
Ray can only exist once Ray is imported. Ray's wrappers are recognised by what Ray 2.60 puts in
them (checked against the installed classes):

- `ray.exceptions.RayTaskError` and its dual `RayTaskError(<cause type>)`: `.cause`; the str
  carries `(pid=N, ip=X)` and the remote traceback (the only record of a chained cause, since
  pickling drops `__cause__`: a Ray Data `UserCodeException` arrives with no cause object).
- `ray.exceptions.RayActorError` / `ActorDiedError`: no cause object; an actor whose `__init__`
  raised carries the traceback text in its message.
- `ray.exceptions.RaySystemError`: `.client_exc`.
- Ray Train V2 (`ray.train.TrainingFailedError` subclasses): `WorkerGroupError.worker_failures`
  (rank -> exception), `ControllerError.controller_failure`; internally
  `UserExceptionWithTraceback._base_exc`, `WorkerHealthCheckFailedError.health_check_failure`.
- Ray Train V1 `TrainingFailedError` and Tune's `TuneError`: `__cause__`.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path

MAX_CHARS = 300

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PID_IP = re.compile(r"\(pid=(\d+), ip=([^,)\s]+)")
_PID_FIELD = re.compile(r"^\s*pid: (\d+)\s*$", re.M)
_IP_FIELD = re.compile(r"^\s*ip: (\S+)\s*$", re.M)
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?:: ?(.*))?$")
_CHAIN = re.compile(r"\n\s*(The above exception was the direct cause of the following exception:"
                    r"|During handling of the above exception, another exception occurred:)\s*\n")
# Attributes in which Ray's wrappers keep the exception they wrap (see the module docstring).
_WRAPPED_IN = ("_base_exc", "controller_failure", "health_check_failure", "client_exc")


def one_line(err: BaseException, keep: tuple[type[BaseException], ...] = ()) -> str:
    """`<ExceptionType>: <first line of its message>` for the root cause of `err`, plus
    ` (worker log: <path>)` where Ray recorded one. Never raises.

    Unwrapping stops at an instance of `keep` (and at `runner.artifacts.store.ArtifactError`): errors whose
    message was written for the user, even when they were raised `from` a lower-level error.
    """
    try:
        return _one_line(err, keep)
    except Exception:
        try:
            return type(err).__name__
        except Exception:
            return "unknown error"


def _one_line(err: BaseException, keep: tuple[type[BaseException], ...]) -> str:
    keep = tuple(keep) + _user_errors()
    root, texts, direct = _root_cause(err, keep)
    name, message = type(root).__name__, _first_line(_text(root))
    from_ray = type(root).__module__.startswith("ray.") or _is_task_error(root)
    own = [_text(root)] if from_ray else []
    # A Ray error with no cause object, or a cause whose own `__cause__` chain pickling dropped:
    # the remote traceback that carried it is the only record left.
    if from_ray or not (keep and isinstance(root, keep)):
        for text in [*own, *direct]:
            if parsed := _parse_traceback(text):
                name, message = parsed
                break
    line = f"{name}: {message}" if message else name
    if where := _worker_log(*_pid_ip([*texts, *direct, *own])):
        line += f" (worker log: {where})"
    return line


def _user_errors() -> tuple[type[BaseException], ...]:
    try:
        from runner.artifacts.store import ArtifactError
    except Exception:
        return ()
    return (ArtifactError,)


def _is_task_error(err: BaseException) -> bool:
    return any(cls.__name__ == "RayTaskError" for cls in type(err).__mro__)


def _inner(err: BaseException, keep: tuple[type[BaseException], ...]) -> BaseException | None:
    """The exception `err` wraps, or None when `err` is the root."""
    attrs = getattr(err, "__dict__", {})  # not getattr(): a dual RayTaskError forwards lookups to its cause
    if _is_task_error(err):
        # Checked before `keep`: a dual RayTaskError(ArtifactError) is an ArtifactError too.
        cause = attrs.get("cause")
        return cause if isinstance(cause, BaseException) else None
    if keep and isinstance(err, keep):
        return None
    for name in _WRAPPED_IN:
        if isinstance(attrs.get(name), BaseException):
            return attrs[name]
    failures = attrs.get("worker_failures")
    if isinstance(failures, dict) and failures:
        first = failures[sorted(failures, key=str)[0]]  # the lowest rank: usually the first to fail
        if isinstance(first, BaseException):
            return first
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return err.exceptions[0]
    if err.__cause__ is not None:
        return err.__cause__
    cause = attrs.get("cause")
    return cause if isinstance(cause, BaseException) else None


def _root_cause(err: BaseException, keep: tuple[type[BaseException], ...]) -> tuple[BaseException, list[str], list[str]]:
    """The innermost exception; the text of every Ray task error passed on the way (outermost
    first); and the text of the task error that directly wrapped the root, if one did."""
    texts, seen, direct = [], set(), []
    while id(err) not in seen and len(seen) < 50:
        seen.add(id(err))
        inner = _inner(err, keep)
        if _is_task_error(err):
            texts.append(_text(err))
        if inner is None:
            break
        direct = texts[-1:] if _is_task_error(err) else []
        err = inner
    return err, texts, direct


def _text(err: BaseException) -> str:
    try:
        return _ANSI.sub("", str(err))
    except Exception:
        return ""


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= MAX_CHARS else line[:MAX_CHARS - 3] + "..."
    return ""


def _parse_traceback(text: str) -> tuple[str, str] | None:
    """(type, first message line) of the root exception in a printed traceback, or None."""
    parts = _CHAIN.split(text)
    blocks, separators = parts[0::2], parts[1::2]
    index = len(blocks) - 1
    while index > 0 and separators[index - 1].startswith("The above exception was the direct cause"):
        index -= 1  # `raise B from A` prints A first: walk back to the root of the chain
    for start in (index, len(blocks) - 1):
        lines = blocks[start].splitlines()
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        for line in lines[frames[-1] + 1 if frames else 0:]:
            if line[:1].isspace() or not line or line.startswith(("Traceback (", "ray::")) or "(pid=" in line:
                continue
            if match := _EXC_LINE.match(line):
                return match.group(1).rsplit(".", 1)[-1], _first_line(match.group(2) or "")
    return None


def _pid_ip(texts: list[str]) -> tuple[str | None, str | None]:
    """The pid and node of the Ray worker named last in these texts (outermost first)."""
    for text in reversed(texts):
        if found := _PID_IP.findall(text):
            return found[0]  # within one traceback, the first header is the root's
        if pid := _PID_FIELD.search(text):
            ip = _IP_FIELD.search(text)
            return pid.group(1), ip.group(1) if ip else None
    return None, None


def _logs_dir() -> Path:
    worker = sys.modules.get("ray._private.worker")
    node = getattr(worker, "_global_node", None)
    if node is not None:
        try:
            return Path(node.get_logs_dir_path())
        except Exception:
            pass
    return Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "session_latest" / "logs"


def _worker_log(pid: str | None, ip: str | None) -> str | None:
    if not pid:
        return None
    logs = _logs_dir()
    for suffix in ("err", "out"):  # stderr holds the worker's logging and warnings
        if found := sorted(glob.glob(str(logs / f"worker-*-{pid}.{suffix}"))):
            return found[-1]
    return f"{logs}/worker-*-{pid}.err on node {ip}" if ip else None
