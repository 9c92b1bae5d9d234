"""What a run compared: the pretrained model (which kind of checkpoint, its family and depth) and
where each task's text came from, as one `inputs` row, plus the note every claim that compares E
with the pretrained model carries when that model is not a base checkpoint.

Pure: the runner passes plain values (the config's model name, `runner.models.checkpoint_kind`,
the HF config's model_type and sizes) and the `task_stats` frame. `task_stats` of older runs has
no `provenance`, `licence` or `synthetic` column: those read as unknown (null), never as real.
"""

from __future__ import annotations

import polars as pl

from analysis.roles import UNSEEN

# The kinds of pretrained checkpoint (the same strings as runner.models.checkpoint_kind returns).
BASE, INSTRUCTION_TUNED, UNKNOWN, RANDOM_INIT = "base", "instruction_tuned", "unknown", "random_init"
KINDS = (BASE, INSTRUCTION_TUNED, UNKNOWN, RANDOM_INIT)

TASK_COLUMNS = ("task", "cluster", "seen", "provenance", "licence", "synthetic", "derived", "train_size")
SCHEMA = {"model": pl.String, "model_kind": pl.String, "model_type": pl.String, "num_layers": pl.Int64,
          "hidden_size": pl.Int64, "tasks": pl.Int64, "seen_tasks": pl.Int64, "unseen_tasks": pl.Int64,
          "synthetic_tasks": pl.Int64, "synthetic_seen_tasks": pl.Int64, "synthetic_unseen_tasks": pl.Int64,
          "real_tasks": pl.Int64, "unknown_provenance_tasks": pl.Int64, "synthetic_task_names": pl.List(pl.String),
          "derived_task_names": pl.List(pl.String)}


def baseline_note(name: str, kind: str) -> str:
    """What to append to the reason of a claim involving s(pretrained, C_t); '' for a base model."""
    model = f"the pretrained model ({name})" if name else "the pretrained model"
    if kind == BASE:
        return ""
    if kind == INSTRUCTION_TUNED:
        return (f"; {model} is already instruction-tuned, so this compares LoRA tuning on top of instruction "
                "tuning, not the paper's base-vs-tuned contrast")
    if kind == RANDOM_INIT:
        return (f"; {model} is a random initialisation (the tests' model), so this checks the plumbing, not the "
                "paper's base-vs-tuned contrast")
    return (f"; it is unknown whether {model} is a base checkpoint (set model.checkpoint), so this may not be "
            "the paper's base-vs-tuned contrast")


def task_provenance(task_stats: pl.DataFrame | None) -> pl.DataFrame:
    """One row per task: TASK_COLUMNS, with null provenance, licence and synthetic where the frame
    does not record them (an older run). `seen`: the task is outside the held-out cluster; `derived`:
    why, where a rule of ours builds the examples from real text (null: a dataset's own examples)."""
    schema = {"task": pl.String, "cluster": pl.String, "seen": pl.Boolean, "provenance": pl.String,
              "licence": pl.String, "synthetic": pl.Boolean, "derived": pl.String, "train_size": pl.Int64}
    if task_stats is None or "task" not in task_stats.columns:
        return pl.DataFrame(schema=schema)
    frame = task_stats
    for column, dtype in (("cluster", pl.String), ("provenance", pl.String), ("licence", pl.String),
                          ("synthetic", pl.Boolean), ("derived", pl.String), ("train_size", pl.Int64)):
        frame = frame.with_columns(pl.col(column).cast(dtype, strict=False) if column in frame.columns
                                   else pl.lit(None, dtype).alias(column))
    return (frame.with_columns((pl.col("cluster") != UNSEEN).fill_null(True).alias("seen"))
            .select(*(pl.col(c).cast(t) for c, t in schema.items())))


def inputs_frame(*, model: str, model_kind: str, model_type: str | None, num_layers: int | None,
                 hidden_size: int | None, task_stats: pl.DataFrame | None) -> pl.DataFrame:
    """One row: the pretrained model (config name, checkpoint kind, HF model_type, hidden states
    per example including the embeddings, hidden size) and how many tasks, seen and unseen, come
    from real text or were generated. Synthetic counts are null when task_stats does not say."""
    tasks = task_provenance(task_stats)
    seen, known = tasks.filter(pl.col("seen")), tasks["synthetic"].is_not_null().any()
    synthetic = tasks.filter(pl.col("synthetic").fill_null(False))

    def count(frame: pl.DataFrame) -> int | None:
        return frame.height if known else None

    row = {"model": model, "model_kind": model_kind, "model_type": model_type, "num_layers": num_layers,
           "hidden_size": hidden_size, "tasks": tasks.height, "seen_tasks": seen.height,
           "unseen_tasks": tasks.height - seen.height, "synthetic_tasks": count(synthetic),
           "synthetic_seen_tasks": count(synthetic.filter(pl.col("seen"))),
           "synthetic_unseen_tasks": count(synthetic.filter(~pl.col("seen"))),
           "real_tasks": count(tasks.filter(~pl.col("synthetic"))),  # null (unknown) rows drop out
           "unknown_provenance_tasks": int(tasks["synthetic"].is_null().sum()),
           "synthetic_task_names": synthetic["task"].to_list() if known else None,
           # Real text, examples built by a rule of ours (pairs, concepts): listed, not counted as synthetic.
           "derived_task_names": tasks.filter(pl.col("derived").fill_null("") != "")["task"].to_list()}
    return pl.DataFrame([row], schema=SCHEMA)
