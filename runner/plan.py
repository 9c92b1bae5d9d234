"""The plan of an experiment: which models to train, with what resources, stored where.

Every artifact path carries the hash of everything it depends on, so a re-run finds finished
work by content, and two configs sharing an output folder never overwrite each other's models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from runner.config import ConfigError, ExperimentConfig, stable_hash

MULTITASK = "multitask"
CONTROL = "control"
PRETRAINED = "pretrained"
UNSEEN = "unseen"


@dataclass(frozen=True)
class TaskRef:
    name: str
    cluster: str


@dataclass(frozen=True)
class TrainJob:
    id: str                 # "multitask" or "control-<task>"
    role: str               # MULTITASK or CONTROL
    tasks: tuple[str, ...]  # the tasks it trains on
    max_steps: int
    batch_size: int         # global batch per optimizer step
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    key: str
    out_dir: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainRun:
    """One Ray Train run: E alone, or one or more controls trained one after another.

    Packing several controls into one run amortises worker start-up (process, imports, process
    group, engine) over many small jobs; on a GPU cluster each control gets its own run."""

    id: str
    jobs: tuple[TrainJob, ...]
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float

    def as_dict(self) -> dict:
        return {"id": self.id, "jobs": [job.as_dict() for job in self.jobs], "workers": self.workers,
                "cpus_per_worker": self.cpus_per_worker, "gpus_per_worker": self.gpus_per_worker}


def group_runs(jobs: list[TrainJob], controls_per_run: int) -> list[TrainRun]:
    """E first (the longest), then the controls in runs of `controls_per_run`."""
    def run(members: list[TrainJob]) -> TrainRun:
        head = members[0]
        name = head.id if len(members) == 1 else f"{CONTROL}-group-{len(runs)}-{len(members)}"
        return TrainRun(id=name, jobs=tuple(members), workers=head.workers,
                        cpus_per_worker=head.cpus_per_worker, gpus_per_worker=head.gpus_per_worker)

    runs: list[TrainRun] = []
    for job in (j for j in jobs if j.role == MULTITASK):
        runs.append(run([job]))
    controls = [j for j in jobs if j.role == CONTROL]
    for start in range(0, len(controls), controls_per_run):
        runs.append(run(controls[start:start + controls_per_run]))
    return runs


@dataclass(frozen=True)
class Plan:
    config: ExperimentConfig
    out: Path
    tasks: tuple[TaskRef, ...]
    jobs: tuple[TrainJob, ...]
    data_key: str
    extract_key: str
    analyze_key: str
    evaluate_key: str
    # A sweep cell's label ("r8-s1/"); empty for a single experiment.
    cell: str = ""

    @property
    def activations_dir(self) -> Path:
        return self.out / "activations" / self.extract_key

    def job(self, job_id: str) -> TrainJob:
        return next(j for j in self.jobs if j.id == job_id)

    def control_for(self, task: str) -> TrainJob:
        return self.job(f"{CONTROL}-{task}")


def make_plan(config: ExperimentConfig, out: Path, tasks: list[TaskRef], cell: str = "") -> Plan:
    out = Path(out).resolve()
    names = [t.name for t in tasks]
    data_key = stable_hash({"tasks": config.model_dump(mode="json")["tasks"], "selected": names,
                            "probe_size": config.extraction.probe_size})
    # What a trained adapter depends on: base model, data, LoRA, optimisation, precision.
    model_part = config.digest("model", "lora", "training", "deepspeed")
    res = config.resources

    def job(role: str, trained_on: list[str], max_steps: int, batch_size: int, workers: int) -> TrainJob:
        job_id = MULTITASK if role == MULTITASK else f"{CONTROL}-{trained_on[0]}"
        key = stable_hash([model_part, data_key, role, trained_on, max_steps, batch_size])
        return TrainJob(id=job_id, role=role, tasks=tuple(trained_on), max_steps=max_steps,
                        batch_size=batch_size, workers=workers,
                        cpus_per_worker=res.cpus_per_worker, gpus_per_worker=res.gpus_per_worker,
                        key=key, out_dir=str(out / "models" / f"{job_id}-{key}"))

    t = config.training
    # E never sees the held-out "unseen" cluster; every task, unseen included, gets its control.
    seen = [ref.name for ref in tasks if ref.cluster != UNSEEN]
    if not seen:
        raise ConfigError("tasks.select: every selected task is in the unseen cluster; "
                          "the multi-task model needs at least one training task")
    jobs = [job(MULTITASK, seen, t.max_steps, t.batch_size, res.multitask_workers)]
    jobs += [job(CONTROL, [name], t.control_max_steps, t.control_batch, res.control_workers) for name in names]
    extract_key = stable_hash([[j.key for j in jobs], config.digest("extraction")])
    analyze_key = stable_hash([extract_key, config.digest("analysis")])
    # Scores depend on the models, the test splits (in data_key, via every job key) and how they
    # are scored; not on `enabled` or the harness benchmarks, which are kept apart.
    scoring = config.evaluation.model_dump(mode="json", exclude={"enabled", "harness_tasks"})
    evaluate_key = stable_hash([[j.key for j in jobs], scoring, config.training.max_length])
    return Plan(config=config, out=out, tasks=tuple(tasks), jobs=tuple(jobs), data_key=data_key,
                extract_key=extract_key, analyze_key=analyze_key, evaluate_key=evaluate_key, cell=cell)
