"""The `report` stage: figures and one self-contained report.html from the frames in <out>/."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from analysis.roles import LAYER_STATS
from runner.artifacts.store import read_parquet

log = logging.getLogger("layerwise.report")

def current(exp) -> bool:
    return (exp.plan.out / "report.html").exists()


def describe(exp) -> list[str]:
    return [f"report: -> {exp.plan.out / 'report.html'}"]


def summary(exp) -> list[str]:
    path = exp.plan.out / "report.html"
    return [f"report: {path}"] if path.exists() else []


def measure_labels(frames: dict[str, pl.DataFrame]) -> dict[str, str]:
    from analysis.measures import measure_info

    if LAYER_STATS not in frames:
        return {}
    return {name: measure_info(name).description for name in frames[LAYER_STATS]["measure"].unique().to_list()}


def run(exp) -> Path:
    from analysis.report import frames_read, write_report

    out = exp.plan.out
    # Exactly the frames the registered sections and figures read (those the run has).
    frames = {name: read_parquet(out / f"{name}.parquet", f"{name} frame")
              for name in frames_read() if (out / f"{name}.parquet").exists()}
    path = write_report(out, frames, primary=exp.config.analysis.primary_measure, labels=measure_labels(frames))
    log.info("report: %s", path)
    return path
