"""The plan of an experiment: which models to train, with what resources, stored where.

Every artifact path carries the hash of everything it depends on, so a re-run finds finished
work by content, and two configs sharing an output folder never overwrite each other's models.

Besides E and one control per task, the plan holds the noise floor (a few controls retrained
with other seeds) and E's exposure guarantee: E trains at least long enough to see every seen
task as often as that task's control can (MOSSA compares models with comparable exposure).

Published experimental models (model.experimental) are in the plan by label only: they are loaded,
not trained, and with training.multitask false the plan has no E and no exposure guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from analysis.roles import CONTROL, MULTITASK, UNSEEN, reseeded
from runner.config import ConfigError, ExperimentConfig, stable_hash
from runner.stages import stage_keys

EXPOSURE_MARGIN = 1.25  # E's step cap must exceed its expected exposure steps by this factor


@dataclass(frozen=True)
class TaskRef:
    name: str
    cluster: str


@dataclass(frozen=True)
class RolePolicy:
    """How one role trains: step cap and floor, global batch, evaluation cadence and workers."""

    max_steps: int
    min_steps: int
    batch_size: int
    eval_every: int
    workers: int


def role_policy(config: ExperimentConfig, role: str) -> RolePolicy:
    """The one place a role's training policy is read from the config. E's floor here is 0: the plan
    raises it to E's exposure guarantee, which depends on the mixture (make_plan)."""
    t, res = config.training, config.resources
    if role == MULTITASK:
        return RolePolicy(max_steps=t.max_steps, min_steps=0, batch_size=t.batch_size,
                          eval_every=t.multitask_eval_every or t.eval_every, workers=res.multitask_workers)
    return RolePolicy(max_steps=t.control_max_steps, min_steps=t.control_min_steps, batch_size=t.control_batch,
                      eval_every=t.eval_every, workers=res.control_workers)


@dataclass(frozen=True)
class TrainJob:
    """Everything one model's training needs. It travels to the Ray workers as is (pickled): the
    launch, the queue, the worker and the trainer read its attributes."""

    id: str                 # "multitask", "control-<task>" or "control-<task>-seed<k>"
    role: str               # MULTITASK or CONTROL
    tasks: tuple[str, ...]  # the tasks it trains on
    seed: int               # LoRA initialisation, data order and dropout
    label: str              # the model's name in the activations and frames
    max_steps: int
    min_steps: int          # no early stop before this (E's exposure, in expectation)
    min_examples: tuple[tuple[str, int], ...]  # no early stop before each task was seen this often
    batch_size: int         # global batch per optimizer step
    eval_every: int         # steps between validations
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    key: str
    out_dir: str
    # The experiment it belongs to: method, LoRA, optimiser, precision, model, lengths. Not part of
    # the job's identity: its key already hashes what a trained model depends on.
    config: ExperimentConfig = field(compare=False, repr=False)

    @classmethod
    def standalone(cls, config: ExperimentConfig, role: str, tasks: Sequence[str], **fields) -> TrainJob:
        """A job outside a plan (tests, benchmarks): the role's policy, the config's seed and
        resources, no cache key or folder; `fields` override any attribute."""
        policy = role_policy(config, role)
        base = {"id": MULTITASK if role == MULTITASK else f"{CONTROL}-{tasks[0]}", "role": role,
                "tasks": tuple(tasks), "seed": config.training.seed, "label": role, "min_examples": (),
                "cpus_per_worker": config.resources.cpus_per_worker,
                "gpus_per_worker": config.resources.gpus_per_worker, "key": "", "out_dir": "",
                **{name: getattr(policy, name) for name in RolePolicy.__dataclass_fields__}}
        return cls(**(base | fields), config=config)


@dataclass(frozen=True)
class TrainRun:
    """One Ray Train run: E alone, one or more controls trained one after another, or a lane that
    trains whatever its group's queue hands out (resources.job_queue, runner.training.queue).

    Packing several controls into one run amortises worker start-up (process, imports, process
    group, base model load) over many small jobs; on a GPU cluster each control gets its own run."""

    id: str
    jobs: tuple[TrainJob, ...]
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    model_dir: str = ""                 # the base model's local folder
    queued: tuple[TrainJob, ...] = ()   # a lane's: every job its queue may hand out, longest first
    group: str = ""                     # a lane's queue group (a sweep cell's)

    @property
    def lane(self) -> bool:
        return bool(self.queued)

    @property
    def keys(self) -> list[str]:
        """The keys of the jobs it may train (what its data and its Ray Train run's name depend on)."""
        return [job.key for job in (self.queued if self.lane else self.jobs)]

    @property
    def config(self) -> ExperimentConfig:
        """The experiment of its first job. A lane may hold several sweep cells' jobs: they share this
        one's model settings (runner.training.launch._lane_group), and each job trains by its own config."""
        return (self.queued or self.jobs)[0].config


def group_runs(jobs: list[TrainJob], controls_per_run: int) -> list[TrainRun]:
    """E first (the longest), then the controls in runs of at most `controls_per_run`, as equal in
    size as possible: 10 controls by 3 make runs of 3, 3, 2, 2, not 3, 3, 3, 1, so the last runs
    finish together instead of one trailing alone while a slot sits idle."""
    def run(members: list[TrainJob]) -> TrainRun:
        head = members[0]
        name = head.id if len(members) == 1 else f"{CONTROL}-group-{len(runs)}-{len(members)}"
        return TrainRun(id=name, jobs=tuple(members), workers=head.workers,
                        cpus_per_worker=head.cpus_per_worker, gpus_per_worker=head.gpus_per_worker)

    runs: list[TrainRun] = []
    for job in (j for j in jobs if j.role == MULTITASK):
        runs.append(run([job]))
    controls = [j for j in jobs if j.role == CONTROL]
    count = math.ceil(len(controls) / controls_per_run)
    start = 0
    for i in range(count):
        size = len(controls) // count + (i < len(controls) % count)
        runs.append(run(controls[start:start + size]))
        start += size
    return runs


@dataclass(frozen=True)
class Exposure:
    """How often E sees one seen task, against how often its control may see it, at the caps."""

    task: str
    rate: float             # the task's share of E's mixture
    multitask_min: int      # examples E is guaranteed to see (its min_steps x batch x rate)
    control_max: int        # examples the control sees at most (its max_steps x batch)

    @property
    def ok(self) -> bool:
        return self.multitask_min >= self.control_max


@dataclass(frozen=True)
class Plan:
    config: ExperimentConfig
    out: Path
    tasks: tuple[TaskRef, ...]
    jobs: tuple[TrainJob, ...]
    exposure: tuple[Exposure, ...]
    train_sizes: dict[str, int]
    data_key: str  # the selected tasks' data: every job key hashes it
    # A sweep cell's label ("r8-s1/"); empty for a single experiment.
    cell: str = ""
    # The published experimental models' labels (model.experimental), loaded and not trained.
    external_labels: tuple[str, ...] = ()
    # Each keyed stage's cache key, by stage name, from what the stage table says it hashes.
    keys: Mapping[str, str] = field(default_factory=dict)

    def key(self, stage: str) -> str:
        """The stage's cache key: its outputs are found by it, so a changed input redoes the work."""
        return self.keys[stage]

    @property
    def multitask(self) -> TrainJob | None:
        """E's job, or None when the run does not train one (training.multitask: false)."""
        return next((j for j in self.jobs if j.role == MULTITASK), None)

    @property
    def tuned(self) -> tuple[str, ...]:
        """The tuned experimental models compared with C_t like E: E when trained, then the published ones."""
        return ((MULTITASK,) if self.multitask else ()) + self.external_labels

    def job(self, job_id: str) -> TrainJob:
        return next(j for j in self.jobs if j.id == job_id)

    @property
    def scored_jobs(self) -> tuple[TrainJob, ...]:
        """The models the evaluate stage scores: every trained one, the noise-floor twins included (each
        on its own task), so each gets a learned-or-not verdict (analysis.derived.learned)."""
        return self.jobs


def train_sizes(config: ExperimentConfig, tasks: list[TaskRef],
                pool_size: int | dict[str, int | None] | None) -> dict[str, int]:
    """Training examples per task as configured: tasks.train_sizes, else max_train, else the pool.
    `pool_size`: the source's training rows, one number for every task or one per task."""
    t = config.tasks
    unknown = sorted(set(t.train_sizes) - {ref.name for ref in tasks})
    if unknown:
        raise ConfigError(f"tasks.train_sizes: {', '.join(unknown)} not among the selected tasks")
    sizes = {}
    for ref in tasks:
        size = t.train_sizes.get(ref.name, t.max_train)
        pool = pool_size.get(ref.name) if isinstance(pool_size, dict) else pool_size
        if pool is not None:
            size = pool if size is None else min(size, pool)
        sizes[ref.name] = size
    return sizes


def baseline_tasks(config: ExperimentConfig, tasks: list[TaskRef]) -> list[TaskRef]:
    """The tasks whose controls are retrained with other seeds: the configured ones, else one
    per cluster in turn (seen clusters first), so the floor is not one cluster's quirk."""
    b = config.baseline
    if not b.seeds:
        return []
    if b.select is not None:
        chosen = [ref for ref in tasks if ref.name in set(b.select)]
        missing = sorted(set(b.select) - {ref.name for ref in chosen})
        if missing:
            raise ConfigError(f"baseline.select: {', '.join(missing)} not among the selected tasks")
        return chosen
    by_cluster: dict[str, list[TaskRef]] = {}
    for ref in sorted(tasks, key=lambda r: r.cluster == UNSEEN):
        by_cluster.setdefault(ref.cluster, []).append(ref)
    chosen: list[TaskRef] = []
    while len(chosen) < min(b.tasks, len(tasks)):
        for members in by_cluster.values():
            if members and len(chosen) < b.tasks:
                chosen.append(members.pop(0))
    return chosen


def _mixture_rates(config: ExperimentConfig, sizes: dict[str, int]) -> dict[str, float] | None:
    from tasks import mixing_rates

    if any(size is None for size in sizes.values()):
        return None  # hub sizes are known only once the data is loaded
    return mixing_rates(sizes, cap=config.tasks.mixture_cap)


def _user_files(names: list[str]) -> dict[str, dict[str, str]]:
    """The content stamps of the user's task files: editing a row retrains what read it."""
    from tasks import get_task
    from tasks.userfiles import content_stamp

    stamps = {name: content_stamp(spec) for name in names if (spec := get_task(name)).files is not None}
    return {"user_files": stamps} if stamps else {}


def _packaged_sources(config: ExperimentConfig, names: list[str]) -> dict[str, dict[str, str]]:
    """Which packaged source each task's rows come from (its pools' key): a task that falls back to
    another package reads other rows, so what was trained on the first is not reused."""
    if config.tasks.source != "packaged":
        return {}
    from tasks import get_task
    from tasks.packaged import build

    keys = {name: build.task_key(build.chosen(spec)) for name in names if (spec := get_task(name)).packaged_sources}
    return {"packaged_sources": keys} if keys else {}


def make_plan(config: ExperimentConfig, out: Path, tasks: list[TaskRef], cell: str = "",
              pool_size: int | dict[str, int | None] | None = None) -> Plan:
    """`pool_size`: training rows each task's source holds (the offline mini-Flan's 512; per task for
    packaged real text), or None where unknown."""
    out = Path(out).resolve()
    names = [t.name for t in tasks]
    sizes = train_sizes(config, tasks, pool_size)
    data_key = stable_hash({"tasks": config.model_dump(mode="json")["tasks"], "selected": names,
                            "probe_size": config.extraction.probe_size, **_user_files(names),
                            **_packaged_sources(config, names)})
    # What a trained adapter depends on: base model, data, LoRA, optimisation, precision. The
    # seed is the job's own (a noise-floor twin differs from its control in the seed alone).
    # model.checkpoint only declares what the base model is: it changes the findings' words, not a model.
    dump = config.model_dump(mode="json")
    # Nor do the published experimental models or whether E is trained: the controls stay shared.
    model_part = stable_hash({"model": {k: v for k, v in dump["model"].items() if k not in ("checkpoint", "experimental")},
                              # Full fine-tuning has no adapter: the lora section changes nothing it trains.
                              "lora": None if config.training.method == "full" else dump["lora"],
                              "deepspeed": dump["deepspeed"]})
    training = config.model_dump(mode="json")["training"]
    training.pop("seed")
    training.pop("multitask")
    res, t = config.resources, config.training

    def job(role: str, trained_on: list[str], seed: int, min_steps: int | None = None,
            min_examples: tuple[tuple[str, int], ...] = ()) -> TrainJob:
        policy = role_policy(config, role)
        min_steps = policy.min_steps if min_steps is None else min_steps
        base_id = MULTITASK if role == MULTITASK else f"{CONTROL}-{trained_on[0]}"
        twin = role == CONTROL and seed != t.seed
        job_id = f"{base_id}-seed{seed}" if twin else base_id
        label = reseeded(seed) if twin else role
        key = stable_hash([model_part, training, data_key, role, trained_on, seed, policy.max_steps, min_steps,
                           policy.batch_size, list(min_examples)])
        return TrainJob(id=job_id, role=role, tasks=tuple(trained_on), seed=seed, label=label,
                        max_steps=policy.max_steps, min_steps=min_steps, min_examples=min_examples,
                        batch_size=policy.batch_size, eval_every=policy.eval_every, workers=policy.workers,
                        cpus_per_worker=res.cpus_per_worker, gpus_per_worker=res.gpus_per_worker,
                        key=key, out_dir=str(out / "models" / f"{job_id}-{key}"), config=config)

    # E never sees the held-out "unseen" cluster; every task, unseen included, gets its control.
    seen = [ref.name for ref in tasks if ref.cluster != UNSEEN]
    if not seen and t.multitask:
        raise ConfigError("tasks.select: every selected task is in the unseen cluster; "
                          "the multi-task model needs at least one training task")
    control = role_policy(config, CONTROL)
    control_max = control.max_steps * control.batch_size
    jobs: list[TrainJob] = []
    exposure: tuple[Exposure, ...] = ()
    if t.multitask:
        e = role_policy(config, MULTITASK)
        rates = _mixture_rates(config, {name: sizes[name] for name in seen})
        # In expectation E sees task t at rate_t per example; the trainer enforces the exact counts.
        min_steps = 0 if rates is None else max(math.ceil(control_max / (rate * e.batch_size))
                                                for rate in rates.values())
        # A shuffled mixture reaches its expected counts only roughly: leave E room to catch up.
        if math.ceil(EXPOSURE_MARGIN * min_steps) > e.max_steps:
            raise ConfigError(
                f"training.max_steps {e.max_steps} is too few for E to see every task as often as its control may "
                f"({control_max} examples = control_max_steps x control batch): E needs about {min_steps} steps, "
                f"so allow >= {math.ceil(EXPOSURE_MARGIN * min_steps)}; raise training.max_steps or lower "
                "training.control_max_steps")
        exposure = tuple(Exposure(name, rate, math.floor(min_steps * e.batch_size * rate), control_max)
                         for name, rate in (rates or {}).items())
        jobs.append(job(MULTITASK, seen, t.seed, min_steps, tuple((name, control_max) for name in seen)))
    jobs += [job(CONTROL, [name], t.seed) for name in names]
    for ref in baseline_tasks(config, tasks):
        jobs += [job(CONTROL, [ref.name], seed) for seed in config.baseline.seeds if seed != t.seed]
    external_labels = tuple(entry.model_label for entry in config.model.experimental)
    plan = Plan(config=config, out=out, tasks=tuple(tasks), jobs=tuple(jobs), exposure=exposure,
                train_sizes=sizes, data_key=data_key, cell=cell, external_labels=external_labels)
    return replace(plan, keys=stage_keys(plan))  # each stage's key, as the stage table declares it
