"""Task scores (the paper's Tables 3 and 4 analogue) and the lm-evaluation-harness benchmarks."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from analysis.frames.scores import gap_column
from analysis.report.html import esc, num, table
from analysis.report.registry import Section, section
from analysis.roles import CONTROL, EVAL, EVAL_GAPS, HARNESS, MULTITASK, PRETRAINED, is_reseeded

MIN_EVAL_EXAMPLES = 30  # below this a task score's 95% CI spans about +-18 points at p = 0.5


@section(80, needs=[EVAL, EVAL_GAPS, HARNESS])
def eval_section(frames: Mapping[str, pl.DataFrame]) -> Section:
    scores = frames.get(EVAL)
    if scores is None or scores.is_empty():
        return []
    gaps = frames.get(EVAL_GAPS)
    tuned = MULTITASK
    if gaps is not None and "experimental" in gaps.columns and gaps.height:
        tuned = gaps["experimental"][0]  # the primary tuned model's gaps (the frame holds every one's)
        gaps = gaps.filter(pl.col("experimental") == tuned)
    name = "E" if tuned == MULTITASK else tuned
    gap_of = {} if gaps is None else {r["task"]: r for r in gaps.iter_rows(named=True)}
    gap = None if gaps is None else gap_column(gaps)
    # The noise-floor twins' scores feed learned.parquet; the table compares the study's models.
    scores = scores.filter(~pl.col("model").map_elements(is_reseeded, return_dtype=pl.Boolean))
    score_of = {(r["model"], r["task"]): r for r in scores.iter_rows(named=True)}
    models = [m for m in (PRETRAINED, MULTITASK, CONTROL) if (scores["model"] == m).any()]
    models += [m for m in scores["model"].unique(maintain_order=True).to_list() if m not in models]  # published ones
    rows = []
    for task, cluster, metric in scores.select("task", "cluster", "metric").unique(maintain_order=True).iter_rows():
        cells = [cluster, task, metric, max(r["n"] for (_, t), r in score_of.items() if t == task)]
        for m in models:
            r = score_of.get((m, task))
            cells.append("" if r is None else f"{r['score']:.1f} [{num(r['ci_low'])}, {num(r['ci_high'])}]")
        g = gap_of.get(task)
        cells += ["", ""] if g is None else [f"{g[gap]:+.1f} [{g['ci_low']:+.1f}, {g['ci_high']:+.1f}]",
                                             g["verdict"]]
        rows.append(cells)
    parts = ["<h2 id='task_scores'>Task scores (Tables 3 and 4 analogue)</h2>",
             "<p>Each task on its own held-out test examples (never the probe set), 0-100, with 95% bootstrap CIs over "
             "the examples: accuracy by ranking the options by log-likelihood, ROUGE-L and BLEU on greedy generations. "
             f"{esc(name)} - C_t uses a paired bootstrap; it is called a difference only when its CI excludes zero"
             f"; {EVAL_GAPS}.parquet holds it for every experimental model.</p>",
             table(rows, head=["cluster", "task", "metric", "n", *models, f"{esc(name)} - C_t [95% CI]", "verdict"])]
    few = [f"{row[1]} (n={row[3]})" for row in rows if row[3] < MIN_EVAL_EXAMPLES]
    if few:
        parts.append(f"<p class='warn'>Scored on fewer than {MIN_EVAL_EXAMPLES} test examples: {esc(', '.join(few))}. "
                     "Their intervals are wide; no ranking of models on these tasks is claimed.</p>")
    harness = frames.get(HARNESS)
    if harness is not None and not harness.is_empty():
        h = harness.pivot(on="model", index=["benchmark", "num_fewshot", "metric"], values="score")
        have = [m for m in (PRETRAINED, MULTITASK) if m in h.columns]
        parts += ["<h2 id='benchmarks'>Benchmarks (Table 2 analogue, lm-evaluation-harness)</h2>",
                  table([(r["benchmark"], r["num_fewshot"], r["metric"], *(f"{r[m]:.2f}" for m in have))
                          for r in h.iter_rows(named=True)], head=["benchmark", "shots", "metric", *have])]
    return parts

