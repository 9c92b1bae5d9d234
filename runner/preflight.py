"""Checks of an experiment that need no Ray and no data: they fail in one line, in seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

from runner.config import ConfigError
from runner.models import check_model_location
from runner.models.resolve import BUILTINS, TINY, looks_like_path


def check_plugins(exp) -> None:
    """The user's measure modules import and register cleanly (before their names are checked)."""
    from analysis.plugins import PluginError, load_plugins

    try:
        load_plugins(exp.config.analysis.plugins)
    except PluginError as err:
        raise ConfigError(str(err)) from None


def check_measures(exp) -> None:
    from analysis.measures import list_measures

    known = set(list_measures())
    cfg = exp.config.analysis
    for name in [*cfg.selected, cfg.primary_measure, *cfg.measure_params]:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"analysis: unknown measure {name!r} ({hint}known: {', '.join(sorted(known))})")


def check_sizes(exp) -> None:
    """Split sizes against each task's pools, where the pools' sizes are known up front (the
    mini-Flan's fixed pools; the packaged real text once built, which `prepare` does first)."""
    from runner.data import held_out_sizes
    from tasks import get_task

    cfg = exp.config
    held = cfg.extraction.probe_size + cfg.tasks.test_size
    for ref in exp.plan.tasks:
        pools = held_out_sizes(cfg, [ref])[ref.name]
        if pools is None:
            continue  # hub sizes are known once the data is loaded; load_splits says it in one line then
        files = get_task(ref.name).files
        where = f"task {ref.name} ({'its files, ' + files.origin if files else 'source ' + cfg.tasks.source})"
        if held > pools["heldout"]:
            raise ConfigError(f"extraction.probe_size + tasks.test_size = {held} exceeds the {pools['heldout']} held-out "
                              f"examples of {where}; lower one of them")
        if cfg.tasks.val_size > pools["validation"]:
            raise ConfigError(f"tasks.val_size {cfg.tasks.val_size} exceeds the {pools['validation']} validation "
                              f"examples of {where}")
        wanted = cfg.tasks.train_sizes.get(ref.name)
        if wanted is not None and wanted > pools["train"]:
            raise ConfigError(f"tasks.train_sizes: {ref.name}: {wanted} exceeds the {pools['train']} training examples "
                              f"of {where}")


def check_hub_model(exp) -> None:
    """A hub id must be in the local HF cache or answer from the hub, before Ray starts."""
    cfg = exp.config.model
    if cfg.name == TINY or cfg.name in BUILTINS or looks_like_path(cfg.name):
        return
    from runner.models.resolve import _check_hub

    _check_hub(cfg)


def check_external_models(exp) -> None:
    """Each model.experimental entry must exist and read the base's inputs the same way (hidden size,
    layers, vocabulary): MOSSA compares the same tokens layer by layer. Metadata only, no weights."""
    if not exp.config.model.experimental:
        return
    from runner.models.shape import mismatch

    for model in exp.externals:  # locating each one fails in one line for a missing path
        problem = mismatch(model, exp.model_dir, exp.config.model.revision)
        if problem:
            raise ConfigError(f"model.experimental {model.name!r} ({model.label}): {problem}; MOSSA compares the same "
                              f"inputs token by token, so pass a checkpoint of the base model's architecture "
                              f"({exp.config.model.name}) or drop the entry")


def check_data_dir(exp) -> None:
    data_dir = exp.config.tasks.data_dir
    if exp.config.tasks.source in ("hub", "flan_submix") and data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise ConfigError(f"tasks.data_dir {data_dir!r}: no such folder; pass the folder holding the hub's Parquet "
                          "copies (<data_dir>/<hub id>/<config>/<split>/*.parquet) or drop tasks.data_dir")


def check_out(out: Path) -> None:
    """--out must be a folder this process can create and write."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; pass a folder path (it is created if missing)")
    existing = next(parent for parent in (out, *out.parents) if parent.exists())
    try:  # a real write: permission bits say nothing for root, or on /proc and read-only mounts
        if not existing.is_dir():
            raise NotADirectoryError(existing)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise ConfigError(f"--out {out}: {existing} is not a writable folder; pass a folder you can write "
                          "(it is created if missing)") from None


def check_experiment(exp) -> None:
    """Every check of the inputs a run makes before Ray starts (a dry run makes the same ones);
    `check_out` comes first, in the CLI, before the plan is built."""
    check_model_location(exp.config.model)
    check_hub_model(exp)
    check_external_models(exp)
    check_data_dir(exp)
    check_sizes(exp)
    check_plugins(exp)
    check_measures(exp)

