"""<sweep out>/report.html: whether each finding replicates across the sweep's settings, the models'
gap curves and maps on relative depth, then the cells one by one (each links to its own report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from analysis.claims.replication import FAILS, MIXED, REPLICATES
from analysis.figures.depth import depth_figure
from analysis.report.html import STYLE, VERDICT_STYLE, esc, figure_html, png, table
from analysis.roles import FINDINGS, GAPS, LAYER_MAP, REPLICATION

REPLICATION_STYLE = {REPLICATES: VERDICT_STYLE["holds"], FAILS: VERDICT_STYLE["contradicted"], MIXED: "#fde2c8"}
DEPTH_FIGURE = "relative_depth"


def _figure(fig_dir: Path, stem: str, fig, caption: str) -> str:
    image = png(fig)
    (fig_dir / f"{stem}.png").write_bytes(image)
    return figure_html(stem, caption, image)


def write_sweep_report(out_dir: Path, frames: Mapping[str, pl.DataFrame], cells: Sequence[Mapping], *, primary: str,
                       swept: Sequence[str]) -> Path:
    """`cells`: one mapping per cell with label, setting, its grid values (`values`) and converged."""
    gaps = frames.get(GAPS)
    primary_gaps = None if gaps is None else gaps.filter(pl.col("measure") == primary)
    scores = "raw" if primary_gaps is None or "scores" not in primary_gaps.columns or primary_gaps.is_empty() \
        else "/".join(sorted(set(primary_gaps["scores"])))
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>layerwise sweep</title>",
             f"<style>{STYLE}</style></head><body><h1>Sweep over {esc(', '.join(swept))}</h1>",
             f"<p>{len(cells)} cells in {len({c['setting'] for c in cells})} settings (cells that differ only in "
             f"their seed form one setting, and its seed-to-seed floor). Gaps and verdicts use {scores} scores "
             "(calibrated: against a permutation null, comparable across widths; analysis.calibrate); "
             f"the primary measure is {esc(primary)}.</p>"]
    replication = frames.get(REPLICATION)
    parts.append("<h2 id='replication'>Does each finding replicate?</h2>")
    if replication is None or replication.is_empty():
        parts.append("<p>No findings to compare.</p>")
    else:
        replication = replication.sort(pl.col("measure") != primary, "measure", "claim")
        rows = replication.select("claim", "measure", "cells", "holds", "contradicted", "inconclusive", "excluded",
                                  "verdict", "reason").rows()
        parts.append(table(rows, ["claim", "measure", "settings", "holds", "contradicted", "inconclusive", "excluded",
                                  "verdict", "reason"],
                           [REPLICATION_STYLE.get(v) for v in replication["verdict"]]))
    if primary_gaps is not None and not primary_gaps.is_empty():
        fig = depth_figure(gaps, frames.get(LAYER_MAP), measure=primary, scores=scores)
        parts.append(_figure(fig_dir, DEPTH_FIGURE, fig, "each setting's gap E - pretrained (seen tasks) against "
                                                          "relative depth, CI band and seed floor; its layer map below"))
    parts.append("<h2 id='cells'>Cells</h2>")
    findings = frames.get(FINDINGS)
    rows = []
    for cell in cells:
        tally = ""
        if findings is not None:
            mine = findings.filter((pl.col("cell") == cell["label"]) & (pl.col("measure") == primary))
            tally = ", ".join(f"{n} {v}" for v, n in mine["verdict"].value_counts().sort("verdict").iter_rows())
        values = ", ".join(f"{k}={v}" for k, v in cell["values"])
        link = f"{cell['label']}/report.html"
        rows.append((cell["label"], values, "yes" if cell["converged"] else "NO (excluded)", tally, link))
    parts.append(table(rows, ["cell", "grid values", "converged", f"findings ({primary})", "report"]))
    parts.append("</body></html>")
    report = out_dir / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report
