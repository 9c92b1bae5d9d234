"""A quiet, informative terminal: the runner's own lines and one progress bar per stage.

Everything else (Ray's driver logs, workers' output, library chatter) goes to <out>/logs/:
`layerwise.log` holds every log record of the run at DEBUG, and `ray/` a copy of the Ray
session's logs (workers' stdout/stderr included) taken when the run ends. `--verbose` puts it
all back on the terminal.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

RAY_DATA_LOGGING = Path(__file__).with_name("ray_data_logging.yaml")
_FORMAT = "%(asctime)s %(name)s: %(message)s"
# Ray's driver-side loggers: kept out of the terminal, kept in <out>/logs/layerwise.log.
RAY_LOGGERS = ("ray", "ray.data", "ray.tune", "ray.train", "ray.air", "ray.util")
_log_dir: Path | None = None
_ray_logs: Path | None = None


class _TerminalFilter(logging.Filter):
    """The terminal shows the runner's own lines only; everything else is in the log files."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("layerwise")


_terminal = sys.stderr


def terminal():
    """The stream that reaches the user's terminal (stderr itself may be going to the log)."""
    return _terminal


def setup(log_dir: Path | None, verbose: bool) -> None:
    """Terminal handler (concise) plus, when `log_dir` is given, a full DEBUG log file there.

    Unless `verbose`, file descriptors 1 and 2 themselves are pointed at <log_dir>/console.log, so
    whatever Ray's C++ core, the workers' forwarded output or any library prints lands there; the
    runner's own lines and progress bars go to a duplicate of the original stderr."""
    global _log_dir, _terminal
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    if log_dir is not None and not verbose:
        log_dir.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        sys.stdout.flush()
        _terminal = os.fdopen(os.dup(2), "w", buffering=1)
        console_log = os.open(log_dir / "console.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(console_log, 1)  # Ray prints the workers' stdout on the driver's stdout
        os.dup2(console_log, 2)
        os.close(console_log)
    terminal = logging.StreamHandler(_terminal)
    terminal.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    terminal.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        terminal.addFilter(_TerminalFilter())
        warnings.filterwarnings("ignore")
        os.environ.setdefault("TQDM_DISABLE", "0")
    root.addHandler(terminal)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        _log_dir = log_dir
        file = logging.FileHandler(log_dir / "layerwise.log", encoding="utf-8")
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(file)


def quiet_ray(verbose: bool) -> None:
    """Before Ray starts: Ray Data logs to its session file only, and no Ray progress bars or
    Tune/Train console reporters; their records reach our root handlers (file always, terminal
    only for errors)."""
    if verbose:
        return
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV/JSON hints
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C stops the run at once
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "0")
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.INFO)


def remember_ray_logs(log_dir: Path) -> None:
    """Note where this Ray session keeps its logs, to copy them into `log_dir` at the end."""
    global _ray_logs
    try:
        import ray

        session = ray._private.worker._global_node.get_session_dir_path()  # local clusters only
        _ray_logs = Path(session) / "logs"
    except Exception:  # attached to a remote cluster: its logs stay on the head node
        _ray_logs = None
    log_dir.mkdir(parents=True, exist_ok=True)


def save_ray_logs() -> Path | None:
    """Copy the local Ray session's logs into <out>/logs/ray (workers' output included)."""
    if _ray_logs is None or _log_dir is None or not _ray_logs.is_dir():
        return None
    target = _log_dir / "ray"
    shutil.copytree(_ray_logs, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.sock", "events"))
    return target


def log_path() -> Path | None:
    return None if _log_dir is None else _log_dir / "layerwise.log"


# ---------------------------------------------------------------- progress

def bar(total: int, desc: str):
    """One live progress bar on the terminal (tqdm), one tick per unit of a stage."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="job", file=_terminal, dynamic_ncols=True, leave=False,
                disable=None if _terminal.isatty() else True)


def say(line: str) -> None:
    """A line on the terminal that does not tear the live progress bar, and in the log file."""
    logging.getLogger("layerwise").info(line)


def _tune_callback_base():
    from ray import tune

    return tune.Callback


class TuneProgress:
    """Built lazily as a tune.Callback: one tick and one line per finished model."""

    def __new__(cls, total: int, desc: str):
        base = _tune_callback_base()

        class _Progress(base):
            def __init__(self):
                self.bar = None

            def setup(self, **info) -> None:
                self.bar = bar(total, desc)

            def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
                if "model" not in result:
                    return
                self.bar.update(1)
                converged = "converged" if result.get("converged") else "NOT converged (hit its step cap)"
                say(f"train: {result['model']:<34} {result.get('steps')} steps, best val loss "
                    f"{result.get('best_val_loss', float('nan')):.4f}, {converged}")

            def on_trial_error(self, iteration, trials, trial, **info) -> None:
                say(f"train: run {trial.config['run']['id']} FAILED")

            def on_experiment_end(self, trials, **info) -> None:
                if self.bar is not None:
                    self.bar.close()

        return _Progress()
