"""Helpers only the tests call: the pipeline never runs them, so they live here, not in the package."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import torch

from analysis.roles import CONTROL, MULTITASK, PRETRAINED, is_reseeded
from runner.models.resolve import BUILTINS, BuiltinModel
from runner.training.batching import encode_prompt, left_pad


def comparison_table(scores: pl.DataFrame) -> pl.DataFrame:
    """Tables 3/4 layout: one row per task, grouped by cluster, scores of each model side by side.

    Columns: cluster, task, metric, n, then one column per model present (pretrained, multitask,
    control, in that order) and multitask_minus_control when both are there. The noise-floor twins'
    rows (scored for analysis.derived.learned) are left out.
    """
    scores = scores.filter(~pl.col("model").map_elements(is_reseeded, return_dtype=pl.Boolean))
    order = [m for m in (PRETRAINED, MULTITASK, CONTROL) if (scores["model"] == m).any()]
    order += sorted(set(scores["model"].unique().to_list()) - set(order))
    wide = (scores.pivot(on="model", index=["cluster", "task", "metric"], values="score")
            .join(scores.group_by("task").agg(pl.col("n").max()), on="task"))
    if {MULTITASK, CONTROL} <= set(order):
        wide = wide.with_columns((pl.col(MULTITASK) - pl.col(CONTROL)).alias("multitask_minus_control"))
    extra = ["multitask_minus_control"] if "multitask_minus_control" in wide.columns else []
    clusters = list(dict.fromkeys(scores["cluster"].to_list()))
    return (wide.with_columns(pl.col("cluster").replace_strict({c: i for i, c in enumerate(clusters)}).alias("_c"))
            .sort("_c", maintain_order=True).select("cluster", "task", "metric", "n", *order, *extra))


def collate_left_padded(tokenizer, prompts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Prompts tokenised (special prefix kept, text cut from the left to max_length) and left-padded."""
    encoded = [encode_prompt(tokenizer, p, max_length) for p in prompts]
    return left_pad(encoded, tokenizer.pad_token_id)


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in pretrained model of this `model.name` (licence, kind, description), or None."""
    return BUILTINS.get(name)
