"""The one inference actor: a base model loaded once, LoRA adapters swapped in place, a plan of
passes per batch. Extraction and scoring are plug-ins ("works", runner.inference.works) that say what one pass computes.

For every Ray Data batch of rows (each row belongs to one task) the actor runs:
  pretrained (adapters off) on every row, E on every row, each published experimental model
  (model.experimental) on every row, and each of the task's own controls (C_t, plus its
  noise-floor twins) on that task's rows,
so the pretrained model, E, every C_t and every published adapter share one copy of the base
weights per actor; with training.method full the run's own models swap their weights into that copy
(runner.models.adapted), and a published full checkpoint is a second set of weights, loaded once per actor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import torch

from analysis.roles import MULTITASK, PRETRAINED
from runner.config import ExperimentConfig, use_tasks
from runner.inference.works import WORKS
from runner.models import AdaptedModel, pick_device, pick_dtype
from runner.ops import metrics

if TYPE_CHECKING:
    from runner.models.external import ExternalModel


@dataclass(frozen=True)
class ModelPass:
    """One model of the plan: its label in the outputs, its adapter (None: the base model) and
    the tasks whose rows it sees (None: every row)."""

    label: str
    adapter: str | None
    tasks: tuple[str, ...] | None = None
    full: str | None = None  # a published full checkpoint's label: its own weights, not the base's


def external_id(index: int) -> str:
    """The adapter name of the index-th published model inside peft (a label may hold any characters)."""
    return f"published{index}"


def model_passes(plan, jobs=None, externals: Sequence[ExternalModel] = ()) -> list[ModelPass]:
    """pretrained, E, the published models (runner.models.external.ExternalModel), then every control on
    its own task (noise-floor twins included)."""
    from runner.models.external import ADAPTER

    jobs = plan.jobs if jobs is None else jobs
    passes = [ModelPass(PRETRAINED, None)]
    # A fully fine-tuned model is named like an adapter: AdaptedModel swaps its weights in (trained_weights).
    passes += [ModelPass(job.label, job.id) for job in jobs if job.role == MULTITASK]
    passes += [ModelPass(m.label, external_id(i)) if m.kind == ADAPTER else ModelPass(m.label, None, full=m.label)
               for i, m in enumerate(externals)]
    passes += [ModelPass(job.label, job.id, job.tasks) for job in jobs if job.role != MULTITASK]
    return passes


def external_sources(externals: Sequence[ExternalModel]) -> tuple[dict[str, str], dict[str, dict]]:
    """(adapter name -> folder or hub id, full label -> {path, revision}) of the published models; a GGUF is
    converted here, once, into its cached folder (in the driver, before any actor starts)."""
    from runner.models.external import ADAPTER, hub_revision, loadable

    adapters, full = {}, {}
    for i, model in enumerate(externals):
        if model.kind == ADAPTER:
            adapters[external_id(i)] = model.path
        else:
            full[model.label] = {"path": loadable(model), "revision": hub_revision(model)}
    return adapters, full


class Work(Protocol):
    """What one pass computes: rows of one model in, an Arrow table out."""

    name: str

    def __init__(self, models: AdaptedModel, exp: ExperimentConfig) -> None: ...

    def __call__(self, label: str, rows: pa.Table) -> pa.Table: ...


class InferenceActor:
    """Ray Data actor: rows in, one output table per (row, model) of the plan out."""

    def __init__(self, experiment: dict, model_dir: str, adapters: dict[str, str], passes: list[dict], work: str,
                 full: dict[str, dict] | None = None, weights: dict[str, str] | None = None):
        exp = ExperimentConfig.model_validate(experiment)
        use_tasks(exp)
        device = pick_device(exp.model)
        if device == "cpu":
            torch.set_num_threads(max(1, round(exp.resources.cpus_per_worker)))
        dtype = pick_dtype(exp.model, device, inference=True)
        self.models = AdaptedModel(model_dir, device, dtype, adapters, weights=weights)
        self.passes = [ModelPass(p["label"], p["adapter"], tuple(p["tasks"]) if p["tasks"] else None, p.get("full"))
                       for p in passes]
        self.work = WORKS[work](self.models, exp)
        # Each published full checkpoint: its own weights, loaded once and kept (every batch runs every model).
        self.full_works = {label: WORKS[work](AdaptedModel(source["path"], device, dtype, {},
                                                           revision=source.get("revision")), exp)
                           for label, source in (full or {}).items()}

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        tasks = batch.column("task").to_pylist()
        parts = []
        for model in self.passes:
            rows = [i for i, task in enumerate(tasks) if model.tasks is None or task in model.tasks]
            if not rows:
                continue
            if model.full is not None:
                parts.append(self.full_works[model.full](model.label, batch.take(rows)))
                continue
            with self.models.use(model.adapter):
                parts.append(self.work(model.label, batch.take(rows)))
        metrics.record_rows(self.work.name, batch.num_rows, time.time() - started)
        return pa.concat_tables(parts)


def blocks_of(table: pa.Table, actors: int, rows_per_batch: int) -> list[pa.Table]:
    """Split the rows (sorted by task) into enough blocks that every actor stays busy: Ray Data
    hands blocks, not batches, to actors, so one block would keep one actor working alone."""
    blocks = max(4 * actors, 1)
    size = max(rows_per_batch, -(-table.num_rows // blocks))
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


def map_with_actors(plan, rows: pa.Table, work: str, model_dir: str, passes: Sequence[ModelPass],
                    rows_per_batch: int, externals: Sequence[ExternalModel] = ()):
    """The Ray Data launch shared by extract and evaluate: a dataset of `work`'s outputs.
    `externals`: the published models (runner.models.external.ExternalModel) among the passes."""
    import ray
    from ray.data import ActorPoolStrategy

    exp = plan.config
    res = exp.resources
    published, full = external_sources(externals)
    trained = {job.id: job.out_dir for job in plan.jobs if any(p.adapter == job.id for p in passes)}
    weights = trained if exp.training.method == "full" else {}
    adapters = {} if weights else trained
    adapters |= {name: path for name, path in published.items() if any(p.adapter == name for p in passes)}
    dataset = ray.data.from_arrow(blocks_of(rows, res.extract_actors, rows_per_batch))
    return dataset.map_batches(
        InferenceActor,
        fn_constructor_kwargs={"experiment": exp.model_dump(mode="json"), "model_dir": model_dir, "adapters": adapters,
                               "passes": [{"label": p.label, "adapter": p.adapter, "tasks": p.tasks, "full": p.full}
                                          for p in passes],
                               "work": work, "full": full, "weights": weights},
        batch_size=rows_per_batch, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=res.extract_actors),
        num_cpus=res.cpus_per_worker, num_gpus=res.gpus_per_worker if res.gpus_per_worker > 0 else 0,
    )
