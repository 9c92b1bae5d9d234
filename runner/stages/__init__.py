"""The stage table: one record per stage of the pipeline, in order.

The CLI (a subcommand per stage), `--dry-run`, the input checks before Ray starts, the plan's cache
keys and sweeps all read this table; none of them names a stage. Adding a stage is one record here
(its help, the stages it reads, what its cache key hashes, the files it writes) plus one module in
this package with:

    run(exp) -> None                  do the work, skipping whatever is already current
    current(exp) -> bool              is every output of this stage there, verified and current?
    describe(exp) -> list[str]        the dry run's lines (jobs, resources, paths, [done]/[todo])
    preflight(exp) -> None            optional: checks that need no Ray, raising one-line errors
    summary(exp) -> list[str]         optional: the closing lines once it has finished
    progress(exps) -> str             optional: how far it got, for the line an interrupt prints
    run_together(exps) -> None        optional: the work of many experiments at once (a sweep's
                                      cells side by side), before each runs its own stages

The records' key and output declarations are plain functions of the plan, here and not in the
modules: the plan computes every key, and `--dry-run` and one-line input errors happen, without
importing a stage module (Ray, torch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from analysis.roles import (
    CKA,
    CORRELATIONS,
    CROSS_LAYER,
    EVAL,
    EVAL_GAPS,
    EVAL_PREDICTIONS,
    FINDINGS,
    GAPS,
    INPUTS,
    LAYER_MAP,
    LAYER_STATS,
    LEARNED,
    MOVEMENT,
    SCORE_CKA,
    SEED_BASELINE,
    SIMILARITY,
    TASK_STATS,
    TRAINING,
    TSNE,
    UNSEEN_FRAME,
)
from runner.config import stable_hash

if TYPE_CHECKING:
    from runner.plan import Plan

TRAIN, EVALUATE, EXTRACT, ANALYZE, REPORT = "train", "evaluate", "extract", "analyze", "report"


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    needs: tuple[str, ...]  # the stages whose outputs it reads
    module: Callable[[], ModuleType]  # imports the stage's module on use
    outputs: Callable[[Plan], tuple[Path, ...]]  # the files and folders it writes
    # What its cache key hashes, given the plan and the keys of the stages before it; None: no key of
    # its own (training keys each job, runner.plan; the report is redrawn whenever it runs).
    key: Callable[[Plan, Mapping[str, str]], list[Any]] | None = None
    ray: bool = True        # needs a Ray cluster (report does not)

    def load(self) -> ModuleType:
        return self.module()


# Imported on use, by plain imports: `--dry-run` and one-line input errors never pay for the stage
# modules' imports (Ray, torch).
def _train() -> ModuleType:
    from runner.stages import train
    return train


def _evaluate() -> ModuleType:
    from runner.stages import evaluate
    return evaluate


def _extract() -> ModuleType:
    from runner.stages import extract
    return extract


def _analyze() -> ModuleType:
    from runner.stages import analyze
    return analyze


def _report() -> ModuleType:
    from runner.stages import report
    return report


def _frames(plan: Plan, *names: str) -> tuple[Path, ...]:
    return tuple(plan.out / f"{name}.parquet" for name in names)


def activations_dir(plan: Plan) -> Path:
    """The extract stage's folder: one per extraction key, so two configs' activations never mix."""
    return plan.out / "activations" / plan.key(EXTRACT)


def _published(plan: Plan) -> list[Any]:
    """The published experimental models' entries, when there are any: a published model's identity is
    its entry (name, revision, label); its files' fingerprint is each stage's recorded inputs
    (runner.models.external.fingerprint)."""
    externals = plan.config.model_dump(mode="json")["model"]["experimental"]
    return [externals] if externals else []


def _extract_key(plan: Plan, keys: Mapping[str, str]) -> list[Any]:
    return [[job.key for job in plan.jobs], plan.config.digest("extraction"), *_published(plan)]


def _analyze_key(plan: Plan, keys: Mapping[str, str]) -> list[Any]:
    return [keys[EXTRACT], plan.config.digest("analysis"), plan.config.model.checkpoint]


def _evaluate_key(plan: Plan, keys: Mapping[str, str]) -> list[Any]:
    # Scores depend on the models, the test splits (in data_key, via every job key) and how they
    # are scored; not on `enabled` or the harness benchmarks, which are kept apart.
    scoring = plan.config.evaluation.model_dump(mode="json", exclude={"enabled", "harness_tasks"})
    return [[job.key for job in plan.scored_jobs], scoring, plan.config.training.max_length, *_published(plan)]


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage(TRAIN, "LoRA-tune the multi-task model E, one control per task and the noise-floor controls",
          needs=(), module=_train,
          outputs=lambda plan: (*_frames(plan, TRAINING), *(Path(job.out_dir) for job in plan.jobs))),
    Stage(EVALUATE, "score pretrained, E, the published models and each control on every task's held-out test examples",
          needs=(TRAIN,), module=_evaluate, key=_evaluate_key,
          outputs=lambda plan: _frames(plan, EVAL, EVAL_GAPS, EVAL_PREDICTIONS, LEARNED)),
    Stage(EXTRACT, "last-token hidden states at every layer for pretrained, E, the published models and each control",
          needs=(TRAIN,), module=_extract, key=_extract_key,
          outputs=lambda plan: (activations_dir(plan), plan.out / "probes.parquet")),
    Stage(ANALYZE, "every selected measure, layer by layer, the noise floor and the findings, into Polars frames",
          needs=(EXTRACT,), module=_analyze, key=_analyze_key,
          outputs=lambda plan: _frames(plan, SIMILARITY, LAYER_STATS, CROSS_LAYER, TSNE, TASK_STATS, INPUTS, CKA,
                                       SEED_BASELINE, MOVEMENT, GAPS, LAYER_MAP, FINDINGS, CORRELATIONS,
                                       UNSEEN_FRAME, SCORE_CKA)),
    Stage(REPORT, "figures and report.html from the frames", needs=(ANALYZE,), module=_report, ray=False,
          outputs=lambda plan: (plan.out / "report.html", plan.out / "figures")),
)}


def stage_keys(plan: Plan) -> dict[str, str]:
    """Every keyed stage's cache key, in pipeline order (a stage may hash the keys before it)."""
    keys: dict[str, str] = {}
    for stage in STAGES.values():
        if stage.key is not None:
            keys[stage.name] = stable_hash(stage.key(plan, keys))
    return keys


def check_inputs(exp, first: str) -> None:
    """Fail before Ray starts when the first stage's inputs were never produced (or are damaged)."""
    for need in STAGES[first].needs:
        if not STAGES[need].load().current(exp):
            raise FileNotFoundError(f"{first}: the {need} stage's outputs are missing or out of date in "
                                    f"{exp.plan.out}; run `layerwise {need}` with the same config and --out first")


def preflight(exp, names: tuple[str, ...]) -> None:
    """Every check that needs no Ray, for every stage about to run."""
    for name in names:
        check = getattr(STAGES[name].load(), "preflight", None)
        if check is not None:
            check(exp)


def run_together(exps: Sequence) -> None:
    """What many experiments (a sweep's cells) do side by side before each runs its own stages: every
    stage at the head of the pipeline that can (`run_together`; training: every cell's models in one
    Tune run, so the cluster stays full). The stages that follow find that work current."""
    for stage in STAGES.values():
        together = getattr(stage.load(), "run_together", None)
        if together is None:
            return
        together(exps)


def summaries(exp, finished: Sequence[str]) -> list[str]:
    """The closing lines of the finished stages, the last product first (the report, then the findings)."""
    return [line for name in reversed(STAGES) if name in finished
            for line in getattr(STAGES[name].load(), "summary", lambda exp: [])(exp)]


def progress(exps: Sequence, current: str | None, finished: Sequence[str]) -> list[str]:
    """How far the stage under way got (before any, every stage not finished), for an interrupt's line."""
    names = [current] if current is not None else [name for name in STAGES if name not in finished]
    modules = [STAGES[name].load() for name in names]
    return [module.progress(exps) for module in modules if hasattr(module, "progress")]
