"""`layerwise run` on the tiny preset, end to end on a real local Ray: the frames, the adapters,
the activations and the report, and that a second run reuses every finished stage."""

import json

import numpy as np
import polars as pl
import pytest
import torch
from peft import PeftModel

from runner.config import load_config, preset_path
from runner.models import load_base_model, resolve_model
from tests.conftest import TINY, layerwise

CONFIG = load_config(preset_path("tiny"))
TASKS = CONFIG.tasks.select
LAYERS = CONFIG.model.tiny.num_layers + 1


def test_cka_frame_meets_the_contract(tiny_run):
    cka = pl.read_parquet(tiny_run / "cka.parquet")
    for column in ("experimental", "task", "cluster", "layer", "cka", "n", "kernel", "debiased"):
        assert column in cka.columns
    cells = set(zip(cka["experimental"], cka["task"], cka["layer"]))
    expected = {(e, t, layer) for e in ("pretrained", "multitask") for t in TASKS for layer in range(LAYERS)}
    assert cells == expected and cka.height == len(expected)
    assert cka["cka"].is_finite().all()
    assert cka["cka"].min() >= 0.0 and cka["cka"].max() <= 1.0 + 1e-9
    assert (cka["n"] == CONFIG.extraction.probe_size).all()
    assert set(cka["kernel"]) == {"linear"} and set(cka["debiased"]) == {False}
    # Layer 0 is the embedding, untouched by LoRA on q/v: every model agrees there exactly.
    assert np.allclose(cka.filter(pl.col("layer") == 0)["cka"].to_numpy(), 1.0, atol=1e-6)


def test_adapters_load_with_peft_and_differ_from_base(tiny_run):
    model_dir = resolve_model(CONFIG.model)
    adapters = sorted((tiny_run / "models").glob("*/adapter_config.json"))
    assert len(adapters) == 1 + len(TASKS)
    ids = torch.tensor([[1, 5, 9, 13]])
    base_logits = load_base_model(model_dir, "cpu", torch.float32)(ids).logits
    for config_file in adapters:
        folder = config_file.parent
        assert json.loads((folder / "_SUCCESS.json").read_text())["key"] in folder.name
        model = PeftModel.from_pretrained(load_base_model(model_dir, "cpu", torch.float32), folder)
        assert not torch.allclose(model(ids).logits, base_logits), f"{folder.name} adapter is a no-op"
        curve = pl.read_parquet(folder / "curve.parquet")
        assert curve["val_loss"].is_finite().all() and curve.height >= 1


def test_activations_are_plain_parquet_polars_reads(tiny_run):
    files = list((tiny_run / "activations").glob("*/*.parquet"))
    assert files
    acts = pl.read_parquet(files)
    assert acts.schema["vector"] == pl.Array(pl.Float32, CONFIG.model.tiny.hidden_size)
    per_model = acts.group_by("model").len()
    n = len(TASKS) * CONFIG.extraction.probe_size * LAYERS
    assert dict(zip(per_model["model"], per_model["len"])) == {"pretrained": n, "multitask": n, "control": n}
    assert acts.select(pl.col("vector").arr.sum()).to_series().is_finite().all()


FIGURES = {"fig2_cka_by_layer", "fig3_cka_representative_clusters", "fig4_tsne_selected_layers", "fig5_pca_dims",
           "fig6a_corr_flesch_kincaid", "fig6b_corr_coleman_liau", "fig7_cka_unseen", "fig8_cka_clusters_1",
           "fig9_cka_clusters_2", "fig10_corr_data_size", "fig11_tsne_pretrained", "fig12_tsne_multitask",
           "layer_map", "cross_layer_cka"}


def test_every_frame_is_tidy_parquet(tiny_run):
    for name in ("cka", "cross_layer", "pca", "tsne", "layer_map", "correlations", "unseen", "task_stats"):
        frame = pl.read_parquet(tiny_run / f"{name}.parquet")
        assert frame.height > 0, name
    layer_map = pl.read_parquet(tiny_run / "layer_map.parquet")
    assert layer_map["layer"].to_list() == list(range(LAYERS))
    assert set(layer_map["function"]) <= {"shared", "transition", "refinement"}
    pca = pl.read_parquet(tiny_run / "pca.parquet")
    assert (pca["n_components"] <= pca["rank_cap"]).all()


def test_report_and_manifest(tiny_run):
    assert {p.stem for p in (tiny_run / "figures").glob("*.png")} >= FIGURES
    html = (tiny_run / "report.html").read_text()
    assert "data:image/png;base64" in html and html.count("<img") >= len(FIGURES)
    assert (tiny_run / "report.html").stat().st_size > 10_000
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"train", "evaluate", "extract", "analyze", "report"}
    assert manifest["config"]["name"] == "tiny" and "ray" in manifest["versions"]


def test_second_run_skips_finished_work(tiny_run):
    before = pl.read_parquet(tiny_run / "cka.parquet")
    result = layerwise("run", "--config", str(TINY), "--out", str(tiny_run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already trained, skipping" in result.stderr
    assert "already complete, skipping" in result.stderr
    assert "cka.parquet is current, skipping" in result.stderr
    assert pl.read_parquet(tiny_run / "cka.parquet").equals(before)


@pytest.mark.parametrize("stage", ["extract", "analyze"])
def test_stage_without_its_inputs_says_what_to_run(tmp_path, stage):
    result = layerwise(stage, "--config", str(TINY), "--out", str(tmp_path), timeout=300)
    assert result.returncode == 2
    assert "first" in result.stderr.strip().splitlines()[-1]
