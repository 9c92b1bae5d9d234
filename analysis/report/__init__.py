"""figures/*.png and one self-contained report.html (PNGs embedded as base64), from the frames.

The report reads frames and draws them; it computes nothing (analysis.derive builds every derived
frame once). Its sections are registered like its figures: `@section(order, needs=[frames])`
(analysis.report.registry), one module per group of sections, the figures one section among them;
`frames_read()` names every frame a section or figure reads, which is what the runner loads.

Its first section says what the run compared (the pretrained model: a base checkpoint as in the
paper, an instruction-tuned one, unknown, or a random initialisation; which tasks are real text and
which are synthetic; how many controls learned their task, analysis.derived.learned), so a reader knows
which question the run can answer; then the verdict on each of the paper's claims, with CIs and the
noise floor; then the run's health (convergence, exposure, whether the controls moved), the layer
map, whether the map survives other measures, task scores, and the paper's figures.

A run may compare several tuned experimental models with the controls: E when it trains one, and
published checkpoints loaded, not trained (model.experimental). The sections and figures read the
primary one's rows of gaps, layer_map and findings (the first in those frames: E when trained); the
"Experimental models" section says which models were published checkpoints and tallies each one's
verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from analysis.figures.registry import frames_needed
from analysis.measures import PAPER_MEASURES

# Importing a section module registers its sections; the registry orders them.
from analysis.report.claims import findings_section, map_section, robustness_section
from analysis.report.compared import experimentals_section, inputs_section, learned_paragraphs
from analysis.report.gallery import figures_section
from analysis.report.health import headline_numbers, health_section
from analysis.report.html import STYLE, VERDICT_STYLE
from analysis.report.registry import SECTIONS, Page, Section, ordered, primary_view, section, sections_needed, tuned_labels
from analysis.report.task_scores import eval_section
from analysis.roles import CKA

__all__ = ["SECTIONS", "STYLE", "VERDICT_STYLE", "Page", "Section", "eval_section", "experimentals_section",
           "figures_section", "findings_section", "frames_read", "headline_numbers", "health_section",
           "inputs_section", "learned_paragraphs", "map_section", "primary_view", "robustness_section", "section",
           "tuned_labels", "write_report"]

REQUIRED_CKA_COLUMNS = ("experimental", "task", "cluster", "layer", CKA)


def frames_read() -> tuple[str, ...]:
    """Every <out>/<name>.parquet the report reads: the registered sections' frames and figures'."""
    return tuple(dict.fromkeys([*sections_needed(), *frames_needed()]))


def write_report(out_dir: Path, frames: Mapping[str, pl.DataFrame], primary: str = PAPER_MEASURES["similarity"],
                 labels: Mapping[str, str] | None = None) -> Path:
    """Write out_dir/figures/*.png and out_dir/report.html, every registered section in order; returns
    the report's path. `labels`: per-layer measure -> axis label."""
    if CKA not in frames:
        raise KeyError("write_report needs a 'cka' frame")
    missing = [c for c in REQUIRED_CKA_COLUMNS if c not in frames[CKA].columns]
    if missing:
        raise ValueError(f"'cka' frame lacks columns {missing}")
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    page = Page.of(frames, primary, labels, out_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>layerwise report</title>",
             f"<style>{STYLE}</style></head><body><h1>Layer by layer: where multi-task learning happens</h1>"]
    for unit in ordered():
        parts += unit.build(page)
    parts.append("</body></html>")
    report = out_dir / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report
