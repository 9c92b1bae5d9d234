"""The sweep's report.html without a sweep: its replication table and cell list from small frames, built
with the run report's public HTML pieces (analysis.report.html)."""

from __future__ import annotations

import polars as pl

from analysis.claims.replication import replication_frame
from analysis.report.sweep import write_sweep_report
from analysis.roles import FINDINGS, REPLICATION


def test_the_sweep_report_tables_each_claims_replication_and_every_cell(tmp_path):
    findings = pl.DataFrame({
        "cell": ["a", "b", "a", "b"], "setting": ["lr=1", "lr=2", "lr=1", "lr=2"],
        "claim": ["early_layers_shared"] * 2 + ["late_layers_specialise"] * 2,
        "measure": ["linear_cka"] * 4, "verdict": ["holds", "holds", "holds", "contradicted"]})
    frames = {FINDINGS: findings, REPLICATION: replication_frame(findings)}
    cells = [{"label": "a", "setting": "lr=1", "values": [("training.lr", 1)], "converged": True},
             {"label": "b", "setting": "lr=2", "values": [("training.lr", 2)], "converged": False}]
    html = write_sweep_report(tmp_path, frames, cells, primary="linear_cka", swept=["training.lr"]).read_text()
    assert "<h1>Sweep over training.lr</h1>" in html and "2 cells in 2 settings" in html
    assert "<td>early_layers_shared</td>" in html and "<td>late_layers_specialise</td>" in html
    assert "<td>a/report.html</td>" in html and "NO (excluded)" in html and "1 holds" in html
    assert (tmp_path / "figures").is_dir() and "<figure" not in html  # no gaps frame: no depth figure
