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
