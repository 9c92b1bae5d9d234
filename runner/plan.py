"""The plan of an experiment: which models to train, with what resources, stored where.

Every artifact path carries the hash of everything it depends on, so a re-run finds finished
work by content, and two configs sharing an output folder never overwrite each other's models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from runner.config import ExperimentConfig, stable_hash

MULTITASK = "multitask"
CONTROL = "control"
PRETRAINED = "pretrained"


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
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    key: str
    out_dir: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    config: ExperimentConfig
    out: Path
    tasks: tuple[TaskRef, ...]
    jobs: tuple[TrainJob, ...]
    data_key: str
    extract_key: str
    analyze_key: str

    @property
    def activations_dir(self) -> Path:
        return self.out / "activations" / self.extract_key

    def job(self, job_id: str) -> TrainJob:
        return next(j for j in self.jobs if j.id == job_id)

    def control_for(self, task: str) -> TrainJob:
        return self.job(f"{CONTROL}-{task}")


def make_plan(config: ExperimentConfig, out: Path, tasks: list[TaskRef]) -> Plan:
    out = Path(out).resolve()
    names = [t.name for t in tasks]
    data_key = stable_hash({"tasks": config.model_dump(mode="json")["tasks"], "selected": names,
                            "probe_size": config.extraction.probe_size})
    # What a trained adapter depends on: base model, data, LoRA, optimisation, precision.
    model_part = config.digest("model", "lora", "training", "deepspeed")
    res = config.resources

    def job(role: str, trained_on: list[str], max_steps: int, workers: int) -> TrainJob:
        job_id = MULTITASK if role == MULTITASK else f"{CONTROL}-{trained_on[0]}"
        key = stable_hash([model_part, data_key, role, trained_on, max_steps])
        return TrainJob(id=job_id, role=role, tasks=tuple(trained_on), max_steps=max_steps, workers=workers,
                        cpus_per_worker=res.cpus_per_worker, gpus_per_worker=res.gpus_per_worker,
                        key=key, out_dir=str(out / "models" / f"{job_id}-{key}"))

    jobs = [job(MULTITASK, names, config.training.max_steps, res.multitask_workers)]
    jobs += [job(CONTROL, [name], config.training.control_max_steps, res.control_workers) for name in names]
    extract_key = stable_hash([[j.key for j in jobs], config.digest("extraction")])
    analyze_key = stable_hash([extract_key, config.digest("analysis")])
    return Plan(config=config, out=out, tasks=tuple(tasks), jobs=tuple(jobs), data_key=data_key,
                extract_key=extract_key, analyze_key=analyze_key)
