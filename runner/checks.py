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
    """Split sizes against each task's pools, where the pools' sizes are known up front (the
    mini-Flan's fixed pools; the packaged real text once built, which `prepare` does first)."""
    from runner.data import held_out_sizes

    cfg = exp.config
    held = cfg.extraction.probe_size + cfg.tasks.test_size
    for ref in exp.plan.tasks:
        pools = held_out_sizes(cfg, [ref])[ref.name]
        if pools is None:
            continue  # hub sizes are known once the data is loaded; load_splits says it in one line then
        where = f"task {ref.name} (source {cfg.tasks.source})"
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


def check_experiment(exp) -> None:
    check_model_location(exp.config.model)
    check_sizes(exp)
    check_measures(exp)
