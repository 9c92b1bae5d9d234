"""Ray dashboard metrics (Prometheus) for every stage, created lazily in whichever process reports."""

from __future__ import annotations

from functools import cache

from ray.util import metrics as ray_metrics


@cache
def _gauge(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Gauge:
    return ray_metrics.Gauge(name, description=description, tag_keys=tags)


@cache
def _counter(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Counter:
    return ray_metrics.Counter(name, description=description, tag_keys=tags)


def record_train_point(job_id: str, point: dict) -> None:
    tags = {"job": job_id}
    for key in ("train_loss", "val_loss", "steps_per_s", "tokens_per_s"):
        if key in point:
            _gauge(f"layerwise_{key}", f"training {key.replace('_', ' ')}", ("job",)).set(point[key], tags=tags)


def record_job_done(role: str) -> None:
    _counter("layerwise_models_trained", "models finished training", ("role",)).inc(tags={"role": role})


def record_rows(stage: str, rows: int, seconds: float) -> None:
    _counter("layerwise_rows", "rows processed", ("stage",)).inc(rows, tags={"stage": stage})
    if seconds > 0:
        _gauge("layerwise_rows_per_s", "rows per second", ("stage",)).set(rows / seconds, tags={"stage": stage})


def record_pairs(count: int) -> None:
    _counter("layerwise_cka_pairs", "CKA (task, layer, pair) values computed", ()).inc(count)
