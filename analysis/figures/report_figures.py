"""The figures of report.html, one registered builder each (analysis.figures.registry), in the
report's order. Adding a figure is one builder here plus its test."""

from __future__ import annotations

import polars as pl

from analysis.figures.cka import cka_boxplots, cluster_grid, cross_layer_heatmaps, layer_map_figure, representative_clusters
from analysis.figures.registry import Context, Drawn, figure
from analysis.roles import (
    CKA,
    CORRELATIONS,
    CROSS_LAYER,
    GAPS,
    LAYER_MAP,
    LAYER_STATS,
    MULTITASK,
    PRETRAINED,
    SCORE_CKA,
    SIMILARITY,
    TSNE,
)


def _half(ctx: Context) -> int:
    return (len(ctx.clusters) + 1) // 2


@figure("fig2_cka_by_layer", needs=[CKA])
def fig2(ctx: Context) -> Drawn:
    if ctx.seen.is_empty():
        return None
    return (f"Figure 2 analogue: {ctx.primary} between each experimental model and the single-task controls, per "
            "layer; boxes: spread across seen tasks; grey band: the seed-to-seed noise floor (C_t against C_t "
            "retrained with another seed).",
            lambda: cka_boxplots(ctx.seen, ctx.layer_map, "Similarity with single-task controls, seen tasks", ctx.floor))


@figure("fig3_cka_representative_clusters", needs=[CKA])
def fig3(ctx: Context) -> Drawn:
    if ctx.seen.is_empty():
        return None
    rep = representative_clusters(ctx.seen)
    return ("Figure 3 analogue: the two clusters best and the two worst encoded by the pre-trained model.",
            lambda: cluster_grid(ctx.seen, rep, ctx.layer_map, "By task cluster (representative)", ctx.floor))


@figure("fig8_cka_clusters_1", needs=[CKA])
def fig8(ctx: Context) -> Drawn:
    if ctx.seen.is_empty():
        return None
    first = ctx.clusters[:_half(ctx)]
    return ("Figure 8 analogue: per cluster, first half.",
            lambda: cluster_grid(ctx.seen, first, ctx.layer_map, "By task cluster (1/2)", ctx.floor))


@figure("fig9_cka_clusters_2", needs=[CKA])
def fig9(ctx: Context) -> Drawn:
    second = ctx.clusters[_half(ctx):]
    if ctx.seen.is_empty() or not second:
        return None
    return ("Figure 9 analogue: per cluster, second half.",
            lambda: cluster_grid(ctx.seen, second, ctx.layer_map, "By task cluster (2/2)", ctx.floor))


@figure("layer_map", needs=[GAPS])
def layer_map(ctx: Context) -> Drawn:
    gaps = ctx.frames[GAPS]
    seen_gaps = gaps.filter((pl.col("measure") == ctx.primary) & (pl.col("group") == "seen"))
    return ("Layer map: mean similarity of both models to C_t, their gap with its 95% CI, and the noise floor; "
            "change points only where the gap stands above the floor.",
            lambda: layer_map_figure(seen_gaps, ctx.primary_frame(LAYER_MAP), ctx.primary))


@figure("layer_map_by_measure", needs=[LAYER_MAP])
def layer_map_by_measure(ctx: Context) -> Drawn:
    from analysis.figures import measures

    if ctx.frames[LAYER_MAP]["measure"].n_unique() <= 1:
        return None
    return ("The layer map under every selected pairwise measure.", lambda: measures.maps_by_measure(ctx.frames[LAYER_MAP]))


@figure("standardize_effect", needs=[SIMILARITY])
def standardize_effect(ctx: Context) -> Drawn:
    from analysis.figures import measures

    similarity = ctx.frames[SIMILARITY]
    if similarity["standardized"].n_unique() <= 1:
        return None
    return (f"{ctx.primary} on raw against z-scored features (analysis.standardize).",
            lambda: measures.standardize_effect(similarity, ctx.primary))


@figure("fig5_layer_measures", needs=[LAYER_STATS])
def fig5(ctx: Context) -> Drawn:
    from analysis.figures import measures

    return ("Figure 5 analogue and beyond: every per-layer measure of the pretrained model, E and C_t (the "
            "principal-components panel is the paper's Figure 5).",
            lambda: measures.layer_stats_grid(ctx.frames[LAYER_STATS], ctx.layer_map, dict(ctx.labels)))


def _correlation(ctx: Context, covariate: str, label: str) -> Drawn:
    from analysis.figures import correlation

    corr = ctx.frames[CORRELATIONS]
    if not corr.filter(pl.col("measure") == covariate)["pearson_r"].is_not_nan().any():
        return None  # a constant covariate (equal data sizes) has no correlation to draw
    return (f"{label}. Pearson r across tasks between the primary measure and the covariate, per layer (filled: "
            "p < 0.05; dashed: Spearman).",
            lambda: correlation.correlation_figure(corr, covariate, ctx.layer_map, label))


@figure("fig6a_corr_flesch_kincaid", needs=[CORRELATIONS])
def fig6a(ctx: Context) -> Drawn:
    return _correlation(ctx, "flesch_kincaid", "Figure 6a analogue: Flesch-Kincaid")


@figure("fig6b_corr_coleman_liau", needs=[CORRELATIONS])
def fig6b(ctx: Context) -> Drawn:
    return _correlation(ctx, "coleman_liau", "Figure 6b analogue: Coleman-Liau")


@figure("fig10_corr_data_size", needs=[CORRELATIONS])
def fig10(ctx: Context) -> Drawn:
    return _correlation(ctx, "train_size", "Figure 10 analogue: training-set size")


@figure("fig7_cka_unseen", needs=[CKA])
def fig7(ctx: Context) -> Drawn:
    if ctx.unseen.is_empty():
        return None
    return ("Figure 7 analogue: tasks held out of multi-task training.",
            lambda: cka_boxplots(ctx.unseen, ctx.layer_map, "Similarity with single-task controls, unseen tasks", ctx.floor))


@figure("fig4_tsne_selected_layers", needs=[TSNE])
def fig4(ctx: Context) -> Drawn:
    from analysis.figures import tsne

    ts = ctx.frames[TSNE]
    return ("Figure 4 analogue: t-SNE of every task's probes, coloured by cluster.",
            lambda: tsne.tsne_grid(ts, tsne.selected_layers(ts, ctx.layer_map), "t-SNE, selected layers"))


def _tsne_model(ctx: Context, model: str, number: int) -> Drawn:
    from analysis.figures import tsne

    ts = ctx.frames[TSNE]
    if not (ts["model"] == model).any():
        return None
    return (f"Figure {number} analogue: t-SNE of the {model} model at every layer computed.",
            lambda: tsne.tsne_model_grid(ts, model))


@figure("fig11_tsne_pretrained", needs=[TSNE])
def fig11(ctx: Context) -> Drawn:
    return _tsne_model(ctx, PRETRAINED, 11)


@figure("fig12_tsne_multitask", needs=[TSNE])
def fig12(ctx: Context) -> Drawn:
    return _tsne_model(ctx, MULTITASK, 12)


@figure("score_vs_cka_transition", needs=[SCORE_CKA])
def score_vs_cka(ctx: Context) -> Drawn:
    from analysis.figures.scores import score_cka_figure

    score_cka = ctx.frames[SCORE_CKA]
    if score_cka.is_empty():
        return None
    layers = sorted(score_cka["layers"][0]) if "layers" in score_cka.columns else []
    return ("Task score against similarity to the control over the transition layers.",
            lambda: score_cka_figure(score_cka, layers))


@figure("cross_layer_cka", needs=[CROSS_LAYER])
def cross_layer(ctx: Context) -> Drawn:
    return ("Cross-layer similarity (beyond the paper): every experimental layer against every control layer, "
            "mean over tasks.", lambda: cross_layer_heatmaps(ctx.frames[CROSS_LAYER]))
