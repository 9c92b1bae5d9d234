"""Task score against CKA with the control at the layer map's transition layers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

from analysis.figures.common import model_color, model_order
from analysis.roles import CKA

MARKERS = {"accuracy": "o", "rouge_l": "s", "bleu": "^"}


def score_cka_figure(frame: pl.DataFrame, layers: list[int]) -> Figure:
    """frame: analysis.frames.scores.score_cka_frame. Left: score; right: score minus the control's score."""
    models = model_order(frame["experimental"].unique().to_list())
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), layout="constrained")
    where = f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"
    for ax, value, label in ((axes[0], "score", "task score (0-100)"),
                             (axes[1], "score_minus_control", "score - control's score")):
        for model in models:
            sub = frame.filter(pl.col("experimental") == model)
            for metric, marker in MARKERS.items():
                m = sub.filter((pl.col("metric") == metric) & pl.col(value).is_not_null())
                if not m.is_empty():
                    ax.scatter(m[CKA], m[value], marker=marker, color=model_color(model, models), s=28,
                               alpha=0.85, edgecolors="black", linewidths=0.4, label=f"{model}, {metric}")
            if sub.height <= 12:  # few tasks: name them
                for task, x, y in sub.select("task", CKA, value).drop_nulls().iter_rows():
                    ax.annotate(task, (x, y), fontsize=6, alpha=0.7, xytext=(3, 2), textcoords="offset points")
        if value == "score_minus_control":
            ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel(f"mean CKA with the control, transition {where}")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Task score vs CKA at the transition layers (one point per task and model)", fontsize=10)
    return fig
