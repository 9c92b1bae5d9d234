"""The analyze stage's side of the `inputs` frame, without Ray: what it reads from the config and
the model's config.json, and that the frame is written, vouched for and read back by the report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from analysis.report import frames_read
from analysis.roles import INPUTS
from runner.config import load_config, preset_path
from runner.experiment import prepare
from runner.stages import analyze


def _exp(model_dir: Path | str, name: str = "google/gemma-3-270m", revision: str | None = None):
    return SimpleNamespace(model_dir=str(model_dir), config=SimpleNamespace(model=SimpleNamespace(
        name=name, revision=revision, checkpoint="auto")))


def test_model_shape_reads_the_decoder_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "gemma3_text", "num_hidden_layers": 18, "hidden_size": 640}))
    assert analyze.model_shape(_exp(tmp_path)) == ("gemma3_text", 19, 640)
    (tmp_path / "config.json").write_text(json.dumps(  # a multimodal wrapper keeps the decoder in text_config
        {"model_type": "gemma3", "text_config": {"num_hidden_layers": 34, "hidden_size": 2560}}))
    assert analyze.model_shape(_exp(tmp_path)) == ("gemma3", 35, 2560)
    (tmp_path / "config.json").write_text("{not json")
    assert analyze.model_shape(_exp(tmp_path)) == (None, None, None)
    assert analyze.model_shape(_exp("nobody/not-cached-anywhere")) == (None, None, None)


def test_inputs_row_falls_back_to_the_measured_depth(tmp_path):
    stats = pl.DataFrame({"task": ["rte"], "cluster": ["nli"], "train_size": [10], "synthetic": [False]})
    row = analyze.inputs_row(_exp(tmp_path / "absent"), stats, 7).row(0, named=True)
    assert (row["model"], row["model_type"], row["num_layers"], row["real_tasks"]) == ("google/gemma-3-270m", None,
                                                                                         7, 1)
    assert row["model_kind"] == "unknown"  # a plain hub name is no proof of a base model


def test_derive_options_carry_the_model_and_the_frame_is_an_output(tmp_path):
    exp = prepare(load_config(preset_path("tiny")), tmp_path)
    opts = analyze.derive_options(exp.plan)
    assert (opts.pretrained_name, opts.pretrained_kind) == ("tiny-llama", "random_init")
    assert exp.plan.out / f"{INPUTS}.parquet" in analyze.outputs(exp.plan)
    assert INPUTS in frames_read()


def test_the_scores_score_cka_holds_are_an_input_of_the_analysis(tmp_path):
    """score_cka is written by the analyze stage from eval.parquet: new or changed scores make the analysis
    stale, and a run without scores keeps the inputs it had."""
    from analysis.roles import EVAL, SCORE_CKA

    plan = SimpleNamespace(out=tmp_path, key=lambda stage: "k")  # activations under out/activations/k
    exp = SimpleNamespace(plan=plan, config=SimpleNamespace(evaluation=SimpleNamespace(enabled=True)))
    without = analyze._inputs(exp)
    assert analyze.scores_frame(exp) is None and without.count("+") == 1
    scores = pl.DataFrame({"model": ["control", "multitask"], "task": ["rte"] * 2, "cluster": ["nli"] * 2,
                           "metric": ["accuracy"] * 2, "score": [50.0, 60.0]})
    scores.write_parquet(tmp_path / f"{EVAL}.parquet")
    scored = analyze._inputs(exp)
    assert scored.startswith(without) and scored != without
    assert analyze.scores_frame(exp).equals(scores)
    assert analyze._inputs(exp, scores=scores.reverse()) == scored  # the rows' order does not matter
    assert analyze._inputs(exp, scores=scores.with_columns(pl.lit(61.0).alias("score"))) != scored
    assert tmp_path / f"{SCORE_CKA}.parquet" in analyze.outputs(plan)
