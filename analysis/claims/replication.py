"""Does a finding replicate across models, methods and sizes? One row per (claim, measure) over a
sweep's settings: the cells that differ in a non-seed key.

A setting's verdict on a claim is its seed cells' verdict when they agree, else inconclusive (a
finding that flips with the seed is not a finding of that setting). A setting whose models did not
converge is left out of the count, and the row says how many were. Then, over the settings that
decided (holds or contradicted):

- replicates:   it holds in every decided setting, and at least two decided;
- fails:        no decided setting holds (and at least one decided);
- mixed:        some decided settings hold and others contradict;
- inconclusive: anything else (nothing decided, or one setting only).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.claims.findings import CONTRADICTED, HOLDS, INCONCLUSIVE

REPLICATES, FAILS, MIXED = "replicates", "fails", "mixed"
REPLICATION_VERDICTS = (REPLICATES, FAILS, MIXED, INCONCLUSIVE)
COLUMNS = ("claim", "measure", "cells", "holds", "contradicted", "inconclusive", "excluded", "verdict", "reason",
           "scores")


def setting_verdict(verdicts: Sequence[str]) -> str:
    """One setting's verdict from its seed cells' verdicts: theirs when they all agree."""
    unique = set(verdicts)
    return unique.pop() if len(unique) == 1 else INCONCLUSIVE


def replication_verdict(holds: int, contradicted: int) -> str:
    decided = holds + contradicted
    if holds and contradicted:
        return MIXED
    if decided >= 2 and holds == decided:
        return REPLICATES
    if decided >= 1 and holds == 0:
        return FAILS
    return INCONCLUSIVE


def _reason(holds: int, contradicted: int, undecided: int, excluded: list[str], verdict: str) -> str:
    decided = holds + contradicted
    if decided + undecided == 0:
        text = "no setting counted"
    else:
        text = f"holds in {holds} of {decided} decided setting{'s' if decided != 1 else ''}" if decided else \
            "no setting decided"
        text += f", contradicted in {contradicted}" if contradicted else ""
        text += f"; {undecided} inconclusive" if undecided else ""
        if verdict == INCONCLUSIVE and decided == 1:
            text += "; a replication needs at least two decided settings"
    if excluded:
        text += f"; excluded (models not converged): {', '.join(excluded)}"
    return text


def replication_frame(findings: pl.DataFrame, *, unconverged: Sequence[str] = (), setting_column: str = "setting",
                      scores: str = "raw") -> pl.DataFrame:
    """The replication table from a sweep's stacked findings.

    `findings` has the findings columns plus `setting_column` (a label per non-seed setting; its
    seed cells share it). `unconverged` names settings left out of the count. The row's `scores` say
    which scores the verdicts were reached on: the findings' own `scores` column ("raw" or
    "calibrated"), else `scores`."""
    excluded = sorted(set(unconverged))
    # One row per (claim, measure), and per tuned model when a run compares several (E, published ones).
    keys = ["claim", "measure", *(["experimental"] if "experimental" in findings.columns else [])]
    if "scores" not in findings.columns:
        findings = findings.with_columns(pl.lit(scores).alias("scores"))
    per_setting = findings.group_by(*keys, setting_column, maintain_order=True).agg(pl.col("verdict"),
                                                                                    pl.col("scores").first())
    rows = []
    for key, group in per_setting.group_by(*keys, maintain_order=True):
        counted = [setting_verdict(v) for s, v in zip(group[setting_column], group["verdict"]) if s not in excluded]
        holds, contradicted = counted.count(HOLDS), counted.count(CONTRADICTED)
        undecided = len(counted) - holds - contradicted
        left_out = sorted(set(group[setting_column]) & set(excluded))
        verdict = replication_verdict(holds, contradicted)
        rows.append({**dict(zip(keys, key)), "cells": len(counted), "holds": holds, "contradicted": contradicted,
                     "inconclusive": undecided, "excluded": len(left_out), "verdict": verdict,
                     "reason": _reason(holds, contradicted, undecided, left_out, verdict),
                     "scores": "/".join(sorted(set(group["scores"])))})
    schema = {"claim": pl.String, "measure": pl.String, "experimental": pl.String, "cells": pl.Int64, "holds": pl.Int64,
              "contradicted": pl.Int64, "inconclusive": pl.Int64, "excluded": pl.Int64, "verdict": pl.String,
              "reason": pl.String, "scores": pl.String}
    columns = [*keys, *COLUMNS[2:]]
    return pl.DataFrame(rows, schema={k: schema[k] for k in columns}).select(columns)
