"""Checks of an experiment that need no Ray and no data: they fail in one line, in seconds."""

from __future__ import annotations

from runner.config import ConfigError
from runner.models import check_model_location


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
    """Split sizes against the source's pools, where the pools' sizes are known up front."""
    cfg = exp.config
    if cfg.tasks.source != "offline":
        return  # hub sizes are known once the data is loaded; load_splits says it in one line then
    from tasks.miniflan.build import POOL_SIZES

    held = cfg.extraction.probe_size + cfg.tasks.test_size
    if held > POOL_SIZES["heldout"]:
        raise ConfigError(f"extraction.probe_size + tasks.test_size = {held} exceeds the {POOL_SIZES['heldout']} held-out "
                          "examples per task of the offline mini-Flan; lower one of them")
    if cfg.tasks.val_size > POOL_SIZES["validation"]:
        raise ConfigError(f"tasks.val_size {cfg.tasks.val_size} exceeds the {POOL_SIZES['validation']} validation "
                          "examples per task of the offline mini-Flan")
    too_big = {t: n for t, n in cfg.tasks.train_sizes.items() if n > POOL_SIZES["train"]}
    if too_big:
        raise ConfigError(f"tasks.train_sizes: {too_big} exceed the {POOL_SIZES['train']} training examples per task "
                          "of the offline mini-Flan")


def check_experiment(exp) -> None:
    check_model_location(exp.config.model)
    check_sizes(exp)
    check_measures(exp)
