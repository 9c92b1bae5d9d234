"""`layerwise sweep`: the study over a grid of LoRA ranks x seeds, trained side by side.

Every (rank, seed) cell is a full experiment in <out>/r<rank>-s<seed>/. All cells' models train
in one Tune run (so the cluster stays full), then each cell is evaluated, extracted and
analysed. The sweep's own frames stack the cells with `lora_rank` and `seed` columns, and a
seed-to-seed baseline, CKA between controls that differ only in their seed, shows how far
CKA moves by chance alone.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis.roles import CKA, CONTROL, EVAL, LAYER_MAP
from runner.artifacts.activations import read_task_reps
from runner.artifacts.store import atomic_write_parquet
from runner.config import AnalysisConfig, ConfigError, ExperimentConfig
from runner.experiment import Experiment, prepare, run_stages
from runner.stages import stages_after

log = logging.getLogger("layerwise.sweep")


@dataclass(frozen=True)
class Cell:
    lora_rank: int
    seed: int

    @property
    def label(self) -> str:
        return f"r{self.lora_rank}-s{self.seed}"


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers, e.g. {flag} 4,8,16") from None
    if not values or len(set(values)) != len(values):
        raise ConfigError(f"{flag} {text!r}: expected distinct comma-separated integers")
    return values


def cell_config(base: ExperimentConfig, cell: Cell) -> ExperimentConfig:
    data = base.model_dump(mode="json")
    data["lora"]["r"], data["training"]["seed"] = cell.lora_rank, cell.seed
    data["name"] = f"{base.name}-{cell.label}"
    return ExperimentConfig.model_validate(data)


def prepare_sweep(base: ExperimentConfig, out: Path, ranks: list[int], seeds: list[int],
                  build_data: bool = True) -> dict[Cell, Experiment]:
    cells = [Cell(r, s) for r, s in itertools.product(ranks, seeds)]
    return {cell: prepare(cell_config(base, cell), out / cell.label, cell=f"{cell.label}/", build_data=build_data)
            for cell in cells}


def seed_pair_cka(activations_a: str, activations_b: str, task: str, cluster: str, analysis: dict) -> pl.DataFrame:
    """The configured primary measure per layer between two controls of one task that differ only in
    their training seed: the same measure, parameters and standardising as the run's own noise floor
    (analysis.suite.pairwise_frame). The column keeps the name `cka`; `measure` says which it is."""
    from analysis.align import align_and_mask
    from analysis.suite import pairwise_frame

    cfg = AnalysisConfig.model_validate(analysis)
    primary = [(cfg.primary_measure, dict(cfg.measure_params.get(cfg.primary_measure, {})))]
    reps = {"a": read_task_reps(Path(activations_a), task)[CONTROL], "b": read_task_reps(Path(activations_b), task)[CONTROL]}
    _, aligned, dropped = align_and_mask(reps)
    sim = pairwise_frame(task, cluster, aligned, [("a", "b")], primary, standardize=cfg.standardize)
    return (sim.sort("layer").select("measure", "task", "cluster", "layer", pl.col("value").alias("cka"), "n")
            .with_columns(pl.lit(dropped).alias("n_dropped")))


def seed_baseline(exps: dict[Cell, Experiment]) -> pl.DataFrame | None:
    import ray

    from runner.ops.console import bar

    remote, pending = ray.remote(num_cpus=1)(seed_pair_cka), {}
    for rank in sorted({c.lora_rank for c in exps}):
        same_rank = sorted((c for c in exps if c.lora_rank == rank), key=lambda c: c.seed)
        for a, b in itertools.combinations(same_rank, 2):
            for task in exps[a].plan.tasks:
                ref = remote.remote(str(exps[a].plan.activations_dir), str(exps[b].plan.activations_dir),
                                    task.name, task.cluster, exps[a].config.analysis.model_dump(mode="json"))
                pending[ref] = (rank, a.seed, b.seed)
    if not pending:
        return None
    frames, progress = [], bar(len(pending), "seed baseline")
    for ref, (rank, seed_a, seed_b) in pending.items():
        frames.append(ray.get(ref).with_columns(lora_rank=pl.lit(rank), seed_a=pl.lit(seed_a), seed_b=pl.lit(seed_b)))
        progress.update(1)
    progress.close()
    return pl.concat(frames)


def stack_cells(exps: dict[Cell, Experiment], name: str) -> pl.DataFrame | None:
    frames = [pl.read_parquet(exp.plan.out / f"{name}.parquet").with_columns(
                  lora_rank=pl.lit(cell.lora_rank), seed=pl.lit(cell.seed))
              for cell, exp in exps.items() if (exp.plan.out / f"{name}.parquet").exists()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


def run_sweep(exps: dict[Cell, Experiment], out: Path,
              on_cell: Callable[[str], None] = lambda label: None) -> dict[str, pl.DataFrame]:
    """Train every cell's models in one Tune run, then run each cell's later stages; `on_cell` hears
    of each cell that has finished."""
    from runner.training.launch import run_training

    first = next(iter(exps.values()))
    run_training([(exp.plan, exp.splits) for exp in exps.values()], first.model_dir)
    for cell, exp in exps.items():
        log.info("sweep: cell %s", cell.label)
        exp._model_dir = first.model_dir  # one base model for every cell
        run_stages(exp, ("train", *stages_after("train")))  # train: writes the cell's training.parquet
        on_cell(cell.label)
    frames = {name: frame for name in (CKA, EVAL, LAYER_MAP)
              if (frame := stack_cells(exps, name)) is not None}
    baseline = seed_baseline(exps)
    if baseline is not None:
        frames["seed_baseline"] = baseline
    for name, frame in frames.items():
        atomic_write_parquet(frame, out / f"{name}.parquet")
    from analysis.figures.sweep import write_sweep_figure

    write_sweep_figure(frames[CKA], frames.get("seed_baseline"), out / "figures" / "sweep_cka_by_rank.png")
    return frames
