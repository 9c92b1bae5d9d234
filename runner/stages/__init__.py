"""The stage table: one record per stage of the pipeline, in order.

The CLI (a subcommand per stage), `--dry-run`, the input checks before Ray starts and sweeps all
read this table. Adding a stage is one record here plus one module in this package with:

    run(exp) -> None                  do the work, skipping whatever is already current
    current(exp) -> bool              is every output of this stage there, verified and current?
    describe(exp) -> list[str]        the dry run's lines (jobs, resources, paths, [done]/[todo])
    preflight(exp) -> None            optional: checks that need no Ray, raising one-line errors
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    needs: tuple[str, ...]  # the stages whose outputs it reads
    module: Callable[[], ModuleType]  # imports the stage's module on use
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


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("train", "LoRA-tune the multi-task model E, one control per task and the noise-floor controls",
          needs=(), module=_train),
    Stage("evaluate", "score pretrained, E, the published models and each control on every task's held-out test examples",
          needs=("train",), module=_evaluate),
    Stage("extract", "last-token hidden states at every layer for pretrained, E, the published models and each control",
          needs=("train",), module=_extract),
    Stage("analyze", "every selected measure, layer by layer, the noise floor and the findings, into Polars frames",
          needs=("extract",), module=_analyze),
    Stage("report", "figures and report.html from the frames", needs=("analyze",), module=_report, ray=False),
)}


def stages_after(name: str) -> tuple[str, ...]:
    """The stages that follow `name` in the pipeline (a sweep trains every cell first, then runs these)."""
    names = list(STAGES)
    return tuple(names[names.index(name) + 1:])


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
