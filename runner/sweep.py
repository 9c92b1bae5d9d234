"""`layerwise sweep`: the study over a grid of any config keys, every cell trained side by side.

A grid is dotted config keys with values (`--grid model.name=a,b --grid training.method=lora,full`,
a preset's `sweep.grid`, or the shorthands `--lora-ranks` and `--seeds`); its cells are their product.
Every cell is a full experiment in <out>/<cell label>/. All cells' models train in one Tune run (so
the cluster stays full; with resources.job_queue, cells on one base model drain one queue, so no
worker starts twice), then each cell is evaluated, extracted and analysed. The sweep's own frames
stack the cells with one column per swept key (plus `lora_rank` and `seed`, always), and a seed-to-seed
baseline, the primary measure between controls of cells that differ only in their seed, shows how far
it moves by chance alone.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from analysis.claims.replication import replication_frame
from analysis.roles import CKA, EVAL, FINDINGS, GAPS, LAYER_MAP, REPLICATION, SEED_BASELINE, TRAINING
from runner.artifacts.store import atomic_write_parquet
from runner.config import ConfigError, ExperimentConfig, check_key, parse_config, stable_hash
from runner.experiment import Experiment, prepare, run_stages
from runner.stages import STAGES, activations_dir, run_together

log = logging.getLogger("layerwise.sweep")

SEED_KEY, RANK_KEY = "training.seed", "lora.r"
# The two keys every sweep frame carries, under the names the frames have always used.
COLUMNS = {RANK_KEY: "lora_rank", SEED_KEY: "seed"}
_SHORT = {RANK_KEY: "r", SEED_KEY: "s"}  # cell folder names: r8-s0, family=qwen2-r8-s0


@dataclass(frozen=True)
class Cell:
    """One point of the sweep: (dotted key, value) for every swept key, in order."""

    values: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        parts = [f"{_SHORT[key]}{value}" if key in _SHORT else f"{key.rsplit('.', 1)[-1]}={value}"
                 for key, value in self.values]
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", "-".join(parts)) or "base"  # never the sweep's own folder

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.values).get(key, default)

    def without(self, key: str) -> tuple[tuple[str, Any], ...]:
        return tuple((k, v) for k, v in self.values if k != key)


def column(key: str) -> str:
    """A swept key's column in the sweep frames."""
    return COLUMNS.get(key, key)


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers, e.g. {flag} 4,8,16") from None
    if not values or len(set(values)) != len(values):
        raise ConfigError(f"{flag} {text!r}: expected distinct comma-separated integers")
    return values


# Keys a cell cannot change: a process holds one set of task files (the registry), so cells share the base's.
FIXED_KEYS = (("tasks", "include"),)


def _known_key(key: str) -> None:
    """A dotted key names a value of the config (runner.config.check_key) that a cell may change."""
    if any(tuple(key.split("."))[:len(fixed)] == fixed for fixed in FIXED_KEYS):
        raise ConfigError(f"--grid {key}: cells share the base config's task files; run one sweep per set of files")
    check_key(key, "--grid")


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2` flags to {key: values}; values are YAML scalars, as `--set` reads them."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2 (e.g. --grid lora.r=4,8)")
        values = [yaml.safe_load(part) for part in text.split(",") if part.strip()]
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {spec!r}: a value is listed twice")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list every value in one flag")
        grid[key] = values
    return grid


def sweep_grid(base: ExperimentConfig, flags: Sequence[str] = (), lora_ranks: str | None = None,
               seeds: str | None = None) -> dict[str, list[Any]]:
    """The preset's grid, then --grid flags (a key there replaces the preset's), then the shorthands.
    Every key is checked against the config's schema; with nothing swept, seeds 0,1 are."""
    grid = {key: list(values) for key, values in base.sweep.grid.items()} | parse_grid(flags)
    for key, text, flag in ((RANK_KEY, lora_ranks, "--lora-ranks"), (SEED_KEY, seeds, "--seeds")):
        if text is None:
            continue
        if key in parse_grid(flags):
            raise ConfigError(f"{flag} and --grid {key} both sweep {key}; keep one")
        grid[key] = parse_ints(text, flag)
    if not grid and not base.sweep.cells:  # a bare `layerwise sweep`: two seeds, the seed baseline
        grid[SEED_KEY] = [0, 1]
    for key in grid:
        _known_key(key)
    return grid


def sweep_cells(base: ExperimentConfig, flags: Sequence[str] = (), lora_ranks: str | None = None,
                seeds: str | None = None) -> list[Cell]:
    """The preset's explicit cells (sweep.cells; one empty cell when it has none) x the grid's product."""
    grid = sweep_grid(base, flags, lora_ranks, seeds)
    explicit = [dict(cell) for cell in base.sweep.cells] or [{}]
    for cell in explicit:
        for key in cell:
            _known_key(key)
            if key in grid:
                raise ConfigError(f"sweep: {key} is both in sweep.cells and in the grid; keep one")
    return [Cell((*cell.items(), *point.values)) for cell in explicit for point in grid_cells(grid)]


def _set(data: dict, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(data.get(part), dict):
            data[part] = {}  # an optional section that is off (None) is switched on by its key
        data = data[part]
    data[leaf] = value


def cell_config(base: ExperimentConfig, cell: Cell) -> ExperimentConfig:
    data = base.model_dump(mode="json")
    data.pop("sweep")  # a cell is one experiment; the grid belongs to the sweep
    for key, value in cell.values:
        _set(data, key, value)
    data["name"] = f"{base.name}-{cell.label}"
    return parse_config(data, f"--grid cell {cell.label}")


def grid_cells(grid: Mapping[str, Sequence[Any]]) -> list[Cell]:
    keys = list(grid)
    return [Cell(tuple(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


def prepare_sweep(base: ExperimentConfig, out: Path, cells: Sequence[Cell],
                  build_data: bool = True) -> dict[Cell, Experiment]:
    if len({cell.label for cell in cells}) != len(cells):
        raise ConfigError("sweep: two cells have the same values; each cell must differ")
    configs = {cell: cell_config(base, cell) for cell in cells}  # every cell validates before any work
    built: dict[str, Cell] = {}
    for cell, config in configs.items():
        same = built.setdefault(stable_hash({**config.model_dump(mode="json"), "name": None}), cell)
        if same is not cell:
            raise ConfigError(f"sweep: cells {same.label} and {cell.label} build the same experiment; drop one")
    return {cell: prepare(config, out / cell.label, cell=f"{cell.label}/", build_data=build_data)
            for cell, config in configs.items()}


def swept_keys(cells: Iterable[Cell]) -> list[str]:
    """Every key any cell sets, in first-seen order."""
    return list(dict.fromkeys(key for cell in cells for key, _ in cell.values))


def cell_columns(exp: Experiment, keys: Sequence[str]) -> dict[str, Any]:
    """The columns a cell's rows carry in the sweep frames: every swept key's value in this cell's
    config (also where another cell set it), plus rank and seed."""
    cfg = exp.config
    data = cfg.model_dump(mode="json")
    out = {"lora_rank": cfg.lora.r, "seed": cfg.training.seed}
    for key in keys:  # the validated value ("1e-4" on the command line is a float here)
        if key not in COLUMNS:
            node: Any = data
            for part in key.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            out[column(key)] = node
    return out


def seed_baseline(exps: dict[Cell, Experiment]) -> pl.DataFrame | None:
    """The primary measure between the controls of every two cells that differ only in their seed: the
    analyze stage's noise floor between two runs (runner.stages.analyze.floor_between), one remote task
    per (pair of cells, task). The column keeps the name `cka`; `measure` says which measure it is."""
    import ray

    from runner.ops.console import bar
    from runner.stages.analyze import floor_between

    remote, pending = ray.remote(num_cpus=1)(floor_between), {}
    groups: dict[str, list[Cell]] = {}
    for cell, setting in setting_labels(exps).items():
        groups.setdefault(setting, []).append(cell)
    for same in groups.values():
        same.sort(key=lambda c: exps[c].config.training.seed)
        for a, b in itertools.combinations(same, 2):
            for task in exps[a].plan.tasks:
                pair = (str(activations_dir(exps[a].plan)), str(activations_dir(exps[b].plan)))
                ref = remote.remote(pair, task.name, task.cluster, exps[a].config.analysis.model_dump(mode="json"))
                columns = {k: v for k, v in cell_columns(exps[a], swept_keys(exps)).items() if k != "seed"}
                pending[ref] = columns | {"seed_a": exps[a].config.training.seed, "seed_b": exps[b].config.training.seed}
    if not pending:
        return None
    frames, progress = [], bar(len(pending), "seed baseline")
    for ref, columns in pending.items():
        floor = ray.get(ref).select("measure", "task", "cluster", "layer", pl.col("value").alias("cka"), "n", "n_dropped")
        frames.append(floor.with_columns(**{k: pl.lit(v) for k, v in columns.items()}))
        progress.update(1)
    progress.close()
    return pl.concat(frames, how="diagonal_relaxed")


def stack_cells(exps: dict[Cell, Experiment], name: str) -> pl.DataFrame | None:
    settings, keys = setting_labels(exps), swept_keys(exps)
    frames = []
    for cell, exp in exps.items():
        if not (exp.plan.out / f"{name}.parquet").exists():
            continue
        frame = pl.read_parquet(exp.plan.out / f"{name}.parquet")
        # A frame's own column wins (training.parquet's `seed` is each model's, a twin's included).
        columns = {"cell": cell.label, "setting": settings[cell], **cell_columns(exp, keys)}
        frames.append(frame.with_columns(**{k: pl.lit(v) for k, v in columns.items() if k not in frame.columns}))
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def setting_labels(exps: Mapping[Cell, Experiment]) -> dict[Cell, str]:
    """Each cell's setting: the values its config holds for every swept key but the seed, so cells that
    differ only in their seed share one, however their values were written (order, a default spelled out)."""
    keys = sorted(key for key in swept_keys(exps) if key != SEED_KEY)
    out = {}
    for cell, exp in exps.items():
        columns = cell_columns(exp, keys)
        out[cell] = Cell(tuple((key, columns[column(key)]) for key in keys)).label
    return out


def unconverged_settings(training: pl.DataFrame | None) -> list[str]:
    """Settings with a trained model that stopped at its step cap (published models are not trained)."""
    if training is None:
        return []
    trained = training.filter(pl.col("trained")) if "trained" in training.columns else training
    return sorted(set(trained.filter(~pl.col("converged").fill_null(False))["setting"]))


def _first_seed(frame: pl.DataFrame | None, primary: dict[str, str]) -> pl.DataFrame | None:
    """One curve per setting: its lowest seed's cell, and that cell's primary tuned model (E when trained)."""
    if frame is None:
        return None
    if "experimental" in frame.columns:
        frame = frame.filter(pl.col("experimental") == pl.col("cell").replace_strict(primary, default=None))
    return frame.filter(pl.col("seed") == pl.col("seed").min().over("setting"))


def run_sweep(exps: dict[Cell, Experiment], out: Path,
              on_cell: Callable[[str], None] = lambda label: None) -> dict[str, pl.DataFrame]:
    """Train every cell's models in one Tune run, then run each cell's later stages; `on_cell` hears
    of each cell that has finished. Then the stacked frames, the seed baseline, the replication
    table across settings and the sweep's report."""
    run_together(list(exps.values()))  # every cell's models in one Tune run
    for cell, exp in exps.items():
        log.info("sweep: cell %s", cell.label)
        run_stages(exp, tuple(STAGES))  # what ran together is current: training writes the cell's training.parquet
        on_cell(cell.label)
    frames = {name: frame for name in (CKA, EVAL, LAYER_MAP, FINDINGS, GAPS, TRAINING)
              if (frame := stack_cells(exps, name)) is not None}
    baseline = seed_baseline(exps)
    if baseline is not None:
        frames[SEED_BASELINE] = baseline
    if FINDINGS in frames:
        frames[REPLICATION] = replication_frame(frames[FINDINGS], unconverged=unconverged_settings(frames.get(TRAINING)))
    for name, frame in frames.items():
        atomic_write_parquet(frame, out / f"{name}.parquet")
    from analysis.figures.sweep import write_sweep_figure
    from analysis.report.sweep import write_sweep_report

    if set(swept_keys(exps)) <= {RANK_KEY, SEED_KEY}:  # by absolute layer: only cells of one model and method
        write_sweep_figure(frames[CKA], frames.get(SEED_BASELINE), out / "figures" / "sweep_cka_by_rank.png")
    first = next(iter(exps.values()))
    unconverged = set(unconverged_settings(frames.get(TRAINING)))
    settings = setting_labels(exps)
    cells = [{"label": cell.label, "setting": settings[cell], "values": cell.values,
              "converged": settings[cell] not in unconverged} for cell in exps]
    primary = {cell.label: exp.plan.tuned[0] for cell, exp in exps.items()}
    figure_frames = {**frames, GAPS: _first_seed(frames.get(GAPS), primary),
                     LAYER_MAP: _first_seed(frames.get(LAYER_MAP), primary)}
    write_sweep_report(out, {k: v for k, v in figure_frames.items() if v is not None}, cells,
                       primary=first.config.analysis.primary_measure, swept=swept_keys(exps))
    return frames


def _flat(data: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= _flat(value, f"{dotted}.")
        else:
            out[dotted] = value
    return out


def describe_cell(cell: Cell, exp: Experiment, first: Experiment) -> list[str]:
    """What a dry run says of a cell before its plan: its grid values, every config key in which it
    differs from the first cell (so nothing differs silently), and its GPU-hours on the cluster."""
    from runner.training.estimate import forward_gpu_hours, job_estimates, totals

    mine, theirs = _flat(exp.config.model_dump(mode="json")), _flat(first.config.model_dump(mode="json"))
    differs = sorted(key for key in mine.keys() | theirs.keys() if key != "name" and mine.get(key) != theirs.get(key))
    grid = ", ".join(f"{key}={value}" for key, value in cell.values)
    unexplained = [key for key in differs if key not in dict(cell.values)]
    lines = [f"== cell {cell.label}: {grid}",
             f"   differs from cell {first.plan.cell.rstrip('/')} in: {', '.join(differs) or 'nothing'}"
             + (f" (not grid keys: {', '.join(unexplained)})" if unexplained else "")]
    estimates = job_estimates(exp.plan)
    if estimates is None:
        lines.append(f"   GPU-hours: unknown (the shape of {exp.config.model.name!r} is not known offline)")
    else:
        total = totals(estimates)
        hours = lambda h: f"{h:,.1f}" if h >= 0.1 else f"{h:.1e}"
        lines.append(f"   GPU-hours on {estimates[0].gpu} (upper bound): training {hours(total['total'])}, "
                     f"extraction and evaluation {hours(forward_gpu_hours(exp.plan) or 0.0)}")
    return lines
