"""The paper's claims tested on this run (findings), the layer map of the primary measure, and
whether the map survives the other measures."""

from __future__ import annotations

import polars as pl

from analysis.claims.findings import DIMENSIONS_CLAIM
from analysis.derived.layer_map import has_structure, layer_ranges
from analysis.report.html import VERDICT_STYLE, esc, num, table
from analysis.report.registry import Page, Section, section
from analysis.roles import FINDINGS, LAYER_MAP


@section(30, needs=[FINDINGS])
def findings_section(page: Page) -> Section:
    findings, primary = page.get(FINDINGS), page.primary
    if findings is None or findings.is_empty():
        return ["<h2 id='findings'>Findings</h2><p>No findings frame: run `layerwise analyze`.</p>"]
    # The primary measure's claims; the dimensionality claim is stated in its own measure.
    main = findings.filter((pl.col("measure") == primary) | (pl.col("claim") == DIMENSIONS_CLAIM))
    agreement = (findings.group_by("claim").agg(
        pl.col("verdict").filter(pl.col("verdict") == "holds").len().alias("holds"),
        pl.col("verdict").filter(pl.col("verdict") == "contradicted").len().alias("contradicted"),
        pl.len().alias("measures")))
    agree = {c: f"holds {h}, contradicted {x} of {n}" for c, h, x, n in agreement.iter_rows()}
    rows, styles = [], []
    for r in main.iter_rows(named=True):
        ci = "" if r["ci_low"] is None else f"[{num(r['ci_low'])}, {num(r['ci_high'])}]"
        rows.append((r["claim"], r["statement"], r["measure"], num(r["value"]), ci, num(r["floor"]), r["n_tasks"],
                     r["verdict"].upper(), r["reason"], agree.get(r["claim"], "")))
        styles.append(VERDICT_STYLE.get(r["verdict"]))
    source = main["layers_from"][0] if main.height else ""
    level = main["ci_level"][0] if main.height and "ci_level" in main.columns else 0.95
    counts = main["verdict"].value_counts()
    tally = ", ".join(f"{n} {v}" for v, n in counts.sort("verdict").iter_rows())
    return [
        "<h2 id='findings'>Findings: the paper's claims, tested on this run</h2>",
        f"<p>{main.height} claims ({tally}). Each statistic is a mean over tasks (and over the layers of a functional "
        f"group) with a bootstrap CI over tasks, simultaneous over the claims ({level:.1%} each, Bonferroni, so the "
        f"family is at 95%). A claim <b>holds</b> only when its CI lies on the paper's side "
        f"of zero and the effect exceeds the seed-to-seed noise floor averaged over the same layers; "
        f"<b>contradicted</b> when it lies on the other side beyond the floor; otherwise <b>inconclusive</b>. "
        f"Layer groups come from {esc(source)}. The last column counts the verdict across every pairwise measure "
        f"analysed (see 'Does the layer map survive other measures?').</p>",
        table(rows, head=["claim", "statement", "measure", "value", "CI", "noise floor", "tasks", "verdict",
                           "why", "across measures"], styles=styles),
    ]


@section(60, needs=[LAYER_MAP])
def map_section(page: Page) -> Section:
    lm, primary = page.primary_frame(LAYER_MAP), page.primary
    if lm is None or lm.is_empty():
        return []
    parts = [f"<h2 id='layer_map'>Layer map ({esc(primary)})</h2>"]
    if not has_structure(lm):
        parts.append("<p><b>No layer structure above noise.</b> No layer's gap between E and the pretrained model is "
                     "distinguishable from the seed-to-seed noise floor (its CI excludes zero and it exceeds the floor), "
                     "so this run draws no shared / transition / refinement map.</p>")
        return parts
    row = lm.row(0, named=True)
    ci = lambda k: "" if row[f"{k}_ci_low"] is None else f" (95% CI {row[f'{k}_ci_low']}-{row[f'{k}_ci_high']})"
    parts.append(f"<p>Change points of the mean gap (multitask - pretrained) over seen tasks, from a continuous "
                 f"two-knot segmented linear fit; their CIs from refitting on tasks resampled with replacement: "
                 f"k1 = {row['k1']}{ci('k1')}, k2 = {row['k2']}{ci('k2')}. "
                 f"{int(lm['distinguishable'].sum())} of {lm.height} layers have a gap distinguishable from the noise "
                 "floor.</p>")
    slopes = {f: s for f, s in lm.select("function", "segment_slope").unique(maintain_order=True).iter_rows()}
    parts.append(table([(f, a, b, f"{slopes[f]:+.4f}") for f, a, b in layer_ranges(lm)],
                        head=["function", "first layer", "last layer", "slope of the gap per layer"]))
    return parts


@section(70, needs=[LAYER_MAP])
def robustness_section(page: Page) -> Section:
    lm = page.get(LAYER_MAP)
    if lm is None or lm["measure"].n_unique() < 2:
        return []
    rows, described = [], []
    for measure in lm["measure"].unique(maintain_order=True).to_list():
        m = lm.filter(pl.col("measure") == measure)
        if has_structure(m):
            r = m.row(0, named=True)
            ranges = "; ".join(f"{f} {a}-{b}" for f, a, b in layer_ranges(m))
            cis = f"k1 {r['k1']} [{r['k1_ci_low']}, {r['k1_ci_high']}], k2 {r['k2']} [{r['k2_ci_low']}, {r['k2_ci_high']}]"
            rows.append((measure, "above noise", ranges, cis, int(m["distinguishable"].sum())))
            described.append((measure, r["k1"], r["k2"]))
        else:
            rows.append((measure, "none above noise", "", "", int(m["distinguishable"].sum())))
    mapped = described
    if not mapped:
        words = "No measure finds layer structure above its noise floor: the run supports no layer map."
    elif len(mapped) == len(rows):
        k1s, k2s = [d[1] for d in mapped], [d[2] for d in mapped]
        spread1, spread2 = max(k1s) - min(k1s), max(k2s) - min(k2s)
        words = (f"Every measure finds structure above noise; the boundaries agree within "
                 f"{spread1} layer{'' if spread1 == 1 else 's'} (k1) and {spread2} layer{'' if spread2 == 1 else 's'} (k2).")
    else:
        words = (f"{len(mapped)} of {len(rows)} measures find structure above noise "
                 f"({', '.join(d[0] for d in mapped)}); the others do not, so the map is measure-dependent.")
    return ["<h2 id='robustness'>Does the layer map survive other measures?</h2>",
            f"<p>The same gap, noise floor and segmentation under every selected pairwise measure. {esc(words)}</p>",
            table(rows, head=["measure", "structure", "map", "change points [95% CI]", "layers above noise"])]

