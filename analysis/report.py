"""figures/*.png and one self-contained report.html (PNGs embedded as base64) from tidy frames.

write_report uses whichever frames it is given (names and columns: docs/interfaces.md, analysis/):
"cka" is required; the layer map, the unseen comparison and the correlations are derived from
"cka" (+ "stats") when not supplied. With an "eval" frame (analysis.scores.EVAL_COLUMNS) the report
adds the Tables 3/4 analogue and a score-vs-CKA figure; with "harness", the Table 2 analogue.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

from analysis.figures.cka import (
    cka_boxplots,
    cluster_grid,
    cross_layer_heatmaps,
    layer_map_figure,
    representative_clusters,
)
from analysis.layer_map import layer_map_frame, layer_ranges
from analysis.scores import comparison_table, score_cka_frame

REQUIRED_CKA_COLUMNS = ("experimental", "task", "cluster", "layer", "cka")


def _derive(frames: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Fill in frames that can be computed from others (the caller's frames always win)."""
    from analysis.correlate import correlation_frame  # local: keeps the import graph shallow
    from analysis.unseen import unseen_frame

    out = dict(frames)
    cka = out["cka"]
    if "layer_map" not in out:
        try:
            out["layer_map"] = layer_map_frame(cka)
        except ValueError:  # no pretrained/multitask pair, or < 4 layers: no map to draw
            pass
    if "unseen" not in out and (cka["cluster"] == "unseen").any():
        out["unseen"] = unseen_frame(cka)
    if "correlations" not in out and "stats" in out:
        out["correlations"] = correlation_frame(cka, out["stats"])
    return out


def _figures(frames: Mapping[str, pl.DataFrame]) -> list[tuple[str, str, Callable[[], Figure]]]:
    """(file stem, caption, builder) for every figure the given frames support, in paper order."""
    from analysis.figures import correlation, spectra, tsne

    cka = frames["cka"]
    lm = frames.get("layer_map")
    seen = cka.filter(pl.col("cluster") != "unseen")
    unseen = cka.filter(pl.col("cluster") == "unseen")
    clusters = sorted(seen["cluster"].unique().to_list())
    half = (len(clusters) + 1) // 2
    figs: list[tuple[str, str, Callable[[], Figure]]] = []
    if not seen.is_empty():
        figs.append((
            "fig2_cka_by_layer",
            ("Figure 2 analogue: CKA between each experimental model and the single-task controls, per "
             "layer; boxes show the spread across seen tasks. Shading: layer map."),
            lambda: cka_boxplots(seen, lm, "CKA with single-task controls, all seen tasks"),
        ))
        rep = representative_clusters(seen)
        figs.append((
            "fig3_cka_representative_clusters",
            ("Figure 3 analogue: the same per layer, for the two clusters best and the two worst encoded "
             "by the pre-trained model."),
            lambda: cluster_grid(seen, rep, lm, "CKA by task cluster (representative)"),
        ))
        figs.append((
            "fig8_cka_clusters_1",
            "Figure 8 analogue: per-cluster CKA, first half of the clusters.",
            lambda: cluster_grid(seen, clusters[:half], lm, "CKA by task cluster (1/2)"),
        ))
        if clusters[half:]:
            figs.append((
                "fig9_cka_clusters_2",
                "Figure 9 analogue: per-cluster CKA, second half of the clusters.",
                lambda: cluster_grid(seen, clusters[half:], lm, "CKA by task cluster (2/2)"),
            ))
    if lm is not None:
        figs.append((
            "layer_map",
            ("Layer map: mean CKA curves, their difference (multitask - pretrained) and the two change "
             "points of a segmented linear fit to it."),
            lambda: layer_map_figure(lm),
        ))
    if "pca" in frames:
        figs.append((
            "fig5_pca_dims",
            ("Figure 5 analogue: number of principal components explaining 99% of the variance, mean over "
             "tasks (band: interquartile range; dotted: the rank cap min(n-1, d))."),
            lambda: spectra.pca_dims_figure(frames["pca"], lm),
        ))
    if "correlations" in frames:
        corr = frames["correlations"]
        for stem, measure, label in (
            ("fig6a_corr_flesch_kincaid", "flesch_kincaid", "Figure 6a analogue: Flesch-Kincaid"),
            ("fig6b_corr_coleman_liau", "coleman_liau", "Figure 6b analogue: Coleman-Liau"),
            ("fig10_corr_data_size", "train_size", "Figure 10 analogue: training-set size"),
        ):
            if (corr["measure"] == measure).any():
                figs.append((
                    stem,
                    (f"{label}. Pearson correlation across tasks between CKA and the measure, per layer "
                     "(filled markers: p < 0.05; dashed: Spearman)."),
                    lambda m=measure, t=label: correlation.correlation_figure(corr, m, lm, t),
                ))
    if not unseen.is_empty():
        figs.append((
            "fig7_cka_unseen",
            "Figure 7 analogue: CKA per layer on tasks held out of multi-task training.",
            lambda: cka_boxplots(unseen, lm, "CKA with single-task controls, unseen tasks"),
        ))
    if "tsne" in frames:
        ts = frames["tsne"]
        figs.append((
            "fig4_tsne_selected_layers",
            ("Figure 4 analogue: t-SNE of the representations of every task's probe set, coloured by "
             "cluster, at a first, two transition, a refinement and the last layer."),
            lambda: tsne.tsne_grid(ts, tsne.selected_layers(ts, lm), "t-SNE, selected layers"),
        ))
        for stem, model, num in (("fig11_tsne_pretrained", "pretrained", 11), ("fig12_tsne_multitask", "multitask", 12)):
            if (ts["model"] == model).any():
                figs.append((
                    stem,
                    f"Figure {num} analogue: t-SNE of the {model} model at every layer computed.",
                    lambda m=model: tsne.tsne_model_grid(ts, m),
                ))
    layers = transition_layers(lm)
    if "eval" in frames and layers:
        from analysis.figures.scores import score_cka_figure

        joined = score_cka_frame(frames["eval"], cka, layers)
        if not joined.is_empty():
            figs.append((
                "score_vs_cka_transition",
                ("Task score against CKA with the single-task control, averaged over the layer map's "
                 "transition layers: one point per (task, experimental model); right, the score minus the "
                 "control's score on the same task."),
                lambda: score_cka_figure(joined, layers),
            ))
    if "cross_layer" in frames:
        figs.append((
            "cross_layer_cka",
            ("Cross-layer CKA (beyond the paper): every experimental layer against every control layer, "
             "mean over tasks."),
            lambda: cross_layer_heatmaps(frames["cross_layer"]),
        ))
    return figs


def transition_layers(layer_map: pl.DataFrame | None) -> list[int]:
    if layer_map is None:
        return []
    return sorted(layer_map.filter(pl.col("function") == "transition")["layer"].to_list())


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def headline_numbers(frames: Mapping[str, pl.DataFrame]) -> list[tuple[str, str]]:
    """A few (label, value) pairs a reader wants before any figure."""
    cka = frames["cka"]
    rows: list[tuple[str, str]] = []
    seen = cka.filter(pl.col("cluster") != "unseen")
    rows.append(("tasks (seen / unseen)", f"{seen['task'].n_unique()} / {cka['task'].n_unique() - seen['task'].n_unique()}"))
    if "n" in cka.columns:
        rows.append(("examples per task (min / median / max)", f"{cka['n'].min()} / {int(cka['n'].median())} / {cka['n'].max()}"))
    if "kernel" in cka.columns:
        est = cka.select("kernel", "debiased").unique().sort("kernel").iter_rows()
        rows.append(("estimator", ", ".join(f"{k} kernel, {'debiased' if d else 'biased'} HSIC" for k, d in est)))
    if not seen.is_empty():
        first, last = seen["layer"].min(), seen["layer"].max()
        for model in sorted(seen["experimental"].unique().to_list()):
            m = seen.filter(pl.col("experimental") == model).group_by("layer").agg(pl.col("cka").mean())
            at = dict(m.iter_rows())
            rows.append((f"{model}: mean CKA at layer {first} / {last}", f"{at[first]:.3f} / {at[last]:.3f}"))
    lm = frames.get("layer_map")
    if lm is not None:
        rows.append(("layer map", "; ".join(f"{f} {a}-{b}" for f, a, b in layer_ranges(lm))))
        peak = lm.sort("delta", descending=True).row(0, named=True)
        rows.append(("largest mean gap multitask - pretrained", f"{peak['delta']:+.3f} at layer {peak['layer']}"))
    corr = frames.get("correlations")
    if corr is not None and not corr.is_empty():
        for measure in ("flesch_kincaid", "coleman_liau", "train_size"):
            sub = corr.filter((pl.col("measure") == measure) & pl.col("pearson_r").is_not_nan())
            if not sub.is_empty():
                best = sub.sort(pl.col("pearson_r").abs(), descending=True).row(0, named=True)
                rows.append((
                    f"strongest Pearson r with {measure}",
                    f"{best['pearson_r']:+.2f} (p = {best['pearson_p']:.2g}), {best['experimental']}, layer {best['layer']}",
                ))
    unseen = frames.get("unseen")
    if unseen is not None and (unseen["group"] == "unseen").any():
        u = unseen.filter((pl.col("group") == "unseen") & pl.col("tuned_minus_base").is_not_null())
        if not u.is_empty():
            last = u["layer"].max()
            gap = u.filter(pl.col("layer") == last)["tuned_minus_base"][0]
            rows.append((f"unseen tasks: mean CKA multitask - pretrained at layer {last}", f"{gap:+.3f}"))
    scores = frames.get("eval")
    if scores is not None and {"multitask", "control"} <= set(scores["model"].to_list()):
        table = comparison_table(scores)
        wins = int((table["multitask_minus_control"] >= 0).sum())
        rows.append(("tasks where multitask >= its control (Tables 3/4)", f"{wins} / {table.height}, mean gap "
                     f"{table['multitask_minus_control'].mean():+.2f} points"))
    pca = frames.get("pca")
    if pca is not None and not pca.is_empty():
        last = pca["layer"].max()
        m = pca.filter(pl.col("layer") == last).group_by("model").agg(pl.col("n_components").mean()).sort("model")
        rows.append((f"PCA dims for 99% variance at layer {last}", ", ".join(f"{a}: {b:.1f}" for a, b in m.iter_rows())))
    return rows


def _table(rows, head=None) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head) if head else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{'<tr>' + h + '</tr>' if h else ''}{body}</table>"


METRIC_NAMES = {"accuracy": "Accuracy", "rouge_l": "ROUGE-L", "bleu": "BLEU"}
MODEL_HEADS = {"pretrained": "pretrained", "multitask": "multi-task (E)", "control": "control (C_t)",
               "multitask_minus_control": "E - C_t"}


def eval_table_html(scores: pl.DataFrame) -> str:
    """Tables 3/4 analogue: per task (grouped by cluster, a header row each), every model's score."""
    table = comparison_table(scores)
    values = [c for c in table.columns if c not in ("cluster", "task", "metric", "n")]
    head = ["task", "metric", *(MODEL_HEADS.get(c, c) for c in values), "n"]
    parts = ["<table class='scores'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for (cluster,), rows in table.group_by("cluster", maintain_order=True):
        title = cluster.replace("_", " ")
        parts.append(f"<tr><th colspan='{len(head)}' class='cluster'>{html.escape(title)}</th></tr>")
        for row in rows.iter_rows(named=True):
            cells = [row["task"], METRIC_NAMES.get(row["metric"], row["metric"])]
            cells += ["" if row[c] is None else (f"{row[c]:+.2f}" if c == "multitask_minus_control" else f"{row[c]:.2f}")
                      for c in values]
            cells.append(row["n"])
            parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _eval_sections(frames: Mapping[str, pl.DataFrame]) -> list[str]:
    parts = []
    if "eval" in frames and not frames["eval"].is_empty():
        parts += [
            ("<h2 id='task_scores'>Task scores (Tables 3 and 4 analogue)</h2><p>Each task on its own held-out "
             "test examples (never the probe set), on a 0-100 scale: accuracy by ranking the options by "
             "log-likelihood, ROUGE-L and BLEU (sacrebleu) on greedy generations. The multi-task model E "
             "against the control C_t trained on that task alone, and the pre-trained model without "
             "adapters; n = scored test examples.</p>"),
            eval_table_html(frames["eval"]),
        ]
    if "harness" in frames and not frames["harness"].is_empty():
        h = frames["harness"].pivot(on="model", index=["benchmark", "num_fewshot", "metric"], values="score")
        models = [m for m in ("pretrained", "multitask") if m in h.columns]
        parts += [
            "<h2 id='benchmarks'>Benchmarks (Table 2 analogue, lm-evaluation-harness)</h2>",
            _table([(r["benchmark"], r["num_fewshot"], r["metric"], *(f"{r[m]:.2f}" for m in models))
                    for r in h.iter_rows(named=True)], head=["benchmark", "shots", "metric", *models]),
        ]
    return parts


def _html(figures: list[tuple[str, str, bytes]], headline: list[tuple[str, str]], layer_map: pl.DataFrame | None,
          frames: Mapping[str, pl.DataFrame] | None = None) -> str:
    table = _table

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>layerwise report</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}",
        "th.cluster{background:#f2f2f2;font-style:italic}",
        "figure{margin:2em 0}img{max-width:100%}figcaption{font-size:0.9em;color:#444}",
        "</style></head><body><h1>Layer by layer: where multi-task learning happens</h1>",
        "<h2>Headline numbers</h2>",
        table(headline),
    ]
    if layer_map is not None:
        from analysis.layer_map import layer_ranges as ranges

        parts += [
            ("<h2>Layer map</h2><p>Change points of the mean CKA gap (multitask - pretrained) over seen tasks, "
             "from a continuous two-knot segmented linear fit (analysis/layer_map.py).</p>"),
            table([(f, a, b, f"{s:+.4f}") for (f, a, b), s in zip(
                ranges(layer_map),
                [layer_map.filter(pl.col("layer") == a)["segment_slope"][0] for _, a, _ in ranges(layer_map)],
            )], head=["function", "first layer", "last layer", "slope of delta per layer"]),
        ]
    parts += _eval_sections(frames or {})
    parts.append("<h2>Figures</h2>")
    for stem, caption, png in figures:
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure id='{stem}'><img alt='{html.escape(stem)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption><b>{html.escape(stem)}</b>: {html.escape(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, frames: Mapping[str, pl.DataFrame]) -> Path:
    """Write out_dir/figures/*.png and out_dir/report.html; returns the report's path."""
    if "cka" not in frames:
        raise KeyError("write_report needs a 'cka' frame")
    missing = [c for c in REQUIRED_CKA_COLUMNS if c not in frames["cka"].columns]
    if missing:
        raise ValueError(f"'cka' frame lacks columns {missing}")
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    frames = _derive(frames)
    rendered = []
    for stem, caption, build in _figures(frames):
        png = _png(build())
        (fig_dir / f"{stem}.png").write_bytes(png)
        rendered.append((stem, caption, png))
    report = out_dir / "report.html"
    report.write_text(_html(rendered, headline_numbers(frames), frames.get("layer_map"), frames), encoding="utf-8")
    return report
