"""The four stages chained: train -> extract -> analyze -> report, each skipping finished work."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from runner.config import ExperimentConfig
from runner.data import load_all_splits, probe_frame, select_tasks
from runner.models import resolve_model
from runner.plan import Plan, make_plan
from runner.store import Manifest, is_done, read_parquet

log = logging.getLogger("layerwise")
STAGES = ("train", "evaluate", "extract", "analyze", "report")
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::UserWarning,ignore::DeprecationWarning",
}


@dataclass
class Experiment:
    config: ExperimentConfig
    plan: Plan
    manifest: Manifest
    _model_dir: str | None = None
    _splits: dict | None = None

    @property
    def splits(self) -> dict:
        # Loaded on first use: `--dry-run` and `report` never read the data.
        if self._splits is None:
            self._splits = load_all_splits(self.config, list(self.plan.tasks))
        return self._splits

    @property
    def model_dir(self) -> str:
        # Resolved lazily: `report` and `--dry-run` never need the weights.
        if self._model_dir is None:
            self._model_dir = resolve_model(self.config.model)
        return self._model_dir


def prepare(config: ExperimentConfig, out: Path, cell: str = "") -> Experiment:
    refs = select_tasks(config)
    plan = make_plan(config, out, refs, cell=cell)
    plan.out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(plan.out, config.model_dump(mode="json"), config.digest())
    return Experiment(config=config, plan=plan, manifest=manifest)


def connect(address: str | None = None) -> None:
    """Attach to a cluster when an address is given (flag or RAY_ADDRESS), else start Ray in-process."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Workers see the driver's caches; library chatter (progress bars, deprecation notices) is
    # silenced so that worker logs say what runs where.
    env = {k: os.environ[k] for k in ("LAYERWISE_CACHE", "HF_HOME", "HF_HUB_OFFLINE") if k in os.environ}
    env.update(QUIET_ENV)
    os.environ.update(QUIET_ENV)
    # Under `ray job submit` the job's runtime env already reaches every worker, and Ray refuses a
    # driver that sets any of the same variables again.
    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
    job_env = (job.get("runtime_env") or {}).get("env_vars") or {}
    env = {k: v for k, v in env.items() if k not in job_env}
    context = ray.init(address=address, runtime_env={"env_vars": env}, logging_level=logging.WARNING)
    resources = ray.cluster_resources()
    log.info("ray: %s, %s CPUs, %s GPUs, dashboard %s", "attached to " + address if address else "local",
             resources.get("CPU", 0), resources.get("GPU", 0), context.dashboard_url or "off")


def stage_train(exp: Experiment) -> None:
    from runner.train import run_training

    ran = run_training([(exp.plan, exp.splits)], exp.model_dir)
    if ran:
        log.info("train: finished %d models", len(ran))


def check_inputs(exp: Experiment, first_stage: str) -> None:
    """Fail before Ray starts when the first stage's inputs were never produced."""
    plan = exp.plan
    if first_stage in ("extract", "evaluate"):
        missing = [job for job in plan.jobs if not is_done(Path(job.out_dir), job.key)]
        if missing:
            raise FileNotFoundError(f"{first_stage}: {len(missing)} models are not trained yet (first: {missing[0].id}); "
                                    "run `layerwise train` with the same config and --out first")
    elif first_stage == "analyze" and not is_done(plan.activations_dir, plan.extract_key):
        raise FileNotFoundError(f"analyze: no finished activations at {plan.activations_dir}; "
                                "run `layerwise extract` with the same config and --out first")
    elif first_stage == "report" and not (plan.out / "cka.parquet").exists():
        raise FileNotFoundError(f"report: no {plan.out / 'cka.parquet'}; "
                                "run `layerwise analyze` with the same config and --out first")


def stage_extract(exp: Experiment) -> None:
    from runner.extract import run_extraction

    check_inputs(exp, "extract")
    run_extraction(exp.plan, exp.model_dir, probe_frame(exp.splits, list(exp.plan.tasks)))


def stage_evaluate(exp: Experiment) -> None:
    from runner.evaluate import run_evaluation

    if not exp.config.evaluation.enabled:
        log.info("evaluate: disabled in the config, skipping")
        return
    check_inputs(exp, "evaluate")
    run_evaluation(exp.plan, exp.model_dir, exp.splits)


def stage_analyze(exp: Experiment) -> None:
    from runner.analyze import run_analysis
    from tasks import task_statistics

    check_inputs(exp, "analyze")
    run_analysis(exp.plan, task_statistics(exp.splits))


def stage_report(exp: Experiment) -> None:
    from analysis.report import write_report
    from runner.analyze import FRAMES

    check_inputs(exp, "report")
    out = exp.plan.out
    frames = {}
    for name in (*FRAMES, "eval", "harness"):
        if (out / f"{name}.parquet").exists():
            # analysis.report knows the task statistics as "stats".
            frames["stats" if name == "task_stats" else name] = read_parquet(out / f"{name}.parquet", name)
    curves = [pl.read_parquet(Path(job.out_dir) / "curve.parquet").with_columns(pl.lit(job.id).alias("job"))
              for job in exp.plan.jobs if (Path(job.out_dir) / "curve.parquet").exists()]
    if curves:
        frames["curves"] = pl.concat(curves, how="diagonal_relaxed")
    path = write_report(out, frames)
    log.info("report: %s", path)


STAGE_FUNCS: dict[str, Callable[[Experiment], None]] = {
    "train": stage_train, "evaluate": stage_evaluate, "extract": stage_extract, "analyze": stage_analyze, "report": stage_report}


def run_stages(exp: Experiment, stages: tuple[str, ...]) -> None:
    for name in stages:
        started = time.time()
        log.info("== %s ==", name)
        STAGE_FUNCS[name](exp)
        exp.manifest.record(name, time.time() - started)
