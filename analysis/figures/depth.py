"""Models of different depth on one axis: each setting's gap curve (E - pretrained, CI band, noise
floor) and its layer map against relative depth, layer / number of blocks, with the paper's boundaries."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.patches import Patch

from analysis.derived.layer_map import FUNCTIONS, PAPER_FRACTIONS
from analysis.figures.common import FALLBACK_COLORS, SHADE


def relative_depth(frame: pl.DataFrame, by: str) -> pl.DataFrame:
    """Adds `depth` = layer / the setting's deepest layer (layer 0 = embeddings, the last = the top block)."""
    return frame.with_columns((pl.col("layer") / pl.col("layer").max().over(by)).alias("depth"))


def depth_figure(gaps: pl.DataFrame, layer_map: pl.DataFrame | None, *, measure: str, setting: str = "setting",
                 scores: str = "raw"):
    """Top: per setting, the seen tasks' mean gap E - pretrained against relative depth, its CI band and
    the seed-to-seed floor (dotted, +-). Bottom: each setting's layer map as a strip (blank where
    the map is not above noise). Dashed verticals: the paper's boundaries on Llama-2-7B (9/32, 15/32)."""
    curves = relative_depth(gaps.filter((pl.col("measure") == measure) & (pl.col("group") == "seen")), setting)
    settings = sorted(curves[setting].unique().to_list())
    fig, (top, strip) = plt.subplots(2, 1, figsize=(8.5, 4.2 + 0.3 * len(settings)), sharex=True, layout="constrained",
                                     gridspec_kw={"height_ratios": [3, max(1, 0.35 * len(settings))]})
    for i, name in enumerate(settings):
        color = FALLBACK_COLORS[i % len(FALLBACK_COLORS)]
        c = curves.filter(pl.col(setting) == name).sort("depth")
        top.plot(c["depth"], c["delta"], color=color, lw=1.6, marker="o", ms=2.5, label=name)
        top.fill_between(c["depth"], c["ci_low"], c["ci_high"], color=color, alpha=0.18, lw=0)
        if c["floor"].is_not_null().any():
            top.plot(c["depth"], c["floor"], color=color, lw=0.8, ls=":")
            top.plot(c["depth"], -c["floor"], color=color, lw=0.8, ls=":")
    top.axhline(0.0, color="k", lw=0.6)
    for frac in PAPER_FRACTIONS:
        for ax in (top, strip):
            ax.axvline(frac, color="#444444", lw=0.9, ls="--")
    top.set_ylabel(f"E - pretrained ({measure}, {scores})")
    top.set_title("E - pretrained by relative depth (band: CI; dotted: +-seed floor;\n"
                  "dashed: the paper's boundaries, 9/32 and 15/32)", fontsize=9)
    top.legend(fontsize=7, loc="best")
    top.grid(alpha=0.3)
    maps = None if layer_map is None else relative_depth(layer_map.filter(pl.col("measure") == measure), setting)
    for i, name in enumerate(settings):
        rows = None if maps is None else maps.filter(pl.col(setting) == name).sort("depth")
        if rows is None or rows.is_empty():
            continue
        n = rows["layer"].max() or 1
        for depth, function in zip(rows["depth"], rows["function"]):
            if function in SHADE:
                strip.barh(i, 1 / n, left=depth - 0.5 / n, color=SHADE[function], edgecolor="none")
    strip.set_yticks(range(len(settings)), settings, fontsize=7)
    strip.set_ylim(-0.5, len(settings) - 0.5)
    strip.set_xlim(0, 1)
    strip.set_xlabel("relative depth (layer / number of blocks; 0 = embeddings)")
    strip.legend(handles=[Patch(color=SHADE[f], label=f) for f in FUNCTIONS], fontsize=7, ncol=3, loc="lower right",
                 bbox_to_anchor=(1.0, 1.0), frameon=False)
    strip.set_title("layer map (blank: not above the noise floor)", fontsize=8, loc="left")
    return fig
