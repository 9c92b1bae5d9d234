"""`layerwise run` on the tiny preset, end to end on a real local Ray: the frames, the adapters,
the activations and the report, the quiet console, and that a second run reuses every stage."""

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
TWINS = CONFIG.baseline.tasks * len(CONFIG.baseline.seeds)  # noise-floor controls
DEFAULT_PAIRWISE = {"linear_cka", "debiased_cka", "mutual_knn", "procrustes", "rsa"}
DEFAULT_SINGLE = {"pca99", "twonn_id", "prompt_entropy", "massive_ratio"}


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
    assert len(adapters) == 1 + len(TASKS) + TWINS
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
    twin = CONFIG.baseline.tasks * CONFIG.extraction.probe_size * LAYERS
    assert dict(zip(per_model["model"], per_model["len"])) == {"pretrained": n, "multitask": n, "control": n,
                                                              "control@1": twin}
    assert acts.select(pl.col("vector").arr.sum()).to_series().is_finite().all()


FIGURES = {"fig2_cka_by_layer", "fig3_cka_representative_clusters", "fig4_tsne_selected_layers",
           "fig5_layer_measures", "fig6a_corr_flesch_kincaid", "fig6b_corr_coleman_liau", "fig7_cka_unseen",
           "fig8_cka_clusters_1", "fig9_cka_clusters_2", "fig11_tsne_pretrained", "fig12_tsne_multitask",
           "layer_map", "layer_map_by_measure", "cross_layer_cka"}
FRAMES = ("cka", "similarity", "layer_stats", "cross_layer", "tsne", "gaps", "layer_map", "findings", "seed_baseline",
          "movement", "correlations", "unseen", "task_stats", "training", "eval", "eval_gaps", "learned")


def test_every_frame_is_tidy_parquet(tiny_run):
    for name in FRAMES:
        frame = pl.read_parquet(tiny_run / f"{name}.parquet")
        assert frame.height > 0, name
    layer_map = pl.read_parquet(tiny_run / "layer_map.parquet")
    assert set(layer_map["measure"]) == DEFAULT_PAIRWISE
    assert sorted(layer_map.filter(pl.col("measure") == "linear_cka")["layer"].to_list()) == list(range(LAYERS))
    assert set(layer_map["function"].drop_nulls()) <= {"shared", "transition", "refinement"}
    # Three seen tasks are too few for an interval over tasks: the run must not claim a map.
    assert set(layer_map["structure"]) == {"none above noise"}
    findings = pl.read_parquet(tiny_run / "findings.parquet")
    assert set(findings["verdict"]) == {"inconclusive"} and findings["claim"].n_unique() >= 8


def test_similarity_covers_every_selected_measure_pair_task_and_layer(tiny_run):
    sim = pl.read_parquet(tiny_run / "similarity.parquet")
    main = sim.filter(pl.col("control") == "control")
    cells = set(zip(main["measure"], main["experimental"], main["task"], main["layer"]))
    for measure in DEFAULT_PAIRWISE:
        for experimental in ("pretrained", "multitask"):
            for task in TASKS:
                assert {(measure, experimental, task, layer) for layer in range(LAYERS)} <= cells
    assert sim["value"].drop_nulls().is_finite().all()
    baseline = pl.read_parquet(tiny_run / "seed_baseline.parquet")
    assert baseline["task"].n_unique() == CONFIG.baseline.tasks and set(baseline["seed_b"]) == {1}
    assert baseline.height == CONFIG.baseline.tasks * LAYERS
    stats = pl.read_parquet(tiny_run / "layer_stats.parquet")
    assert set(stats["measure"]) == DEFAULT_SINGLE
    assert {"pretrained", "multitask", "control"} <= set(stats["model"])


def test_training_frame_records_every_model(tiny_run):
    training = pl.read_parquet(tiny_run / "training.parquet")
    assert training.height == 1 + len(TASKS) + TWINS
    for column in ("model", "role", "tasks", "seed", "steps", "examples_seen", "best_val_loss", "converged"):
        assert training[column].null_count() == 0, column
    seen = training.filter(pl.col("multitask_examples").is_not_null())
    assert (seen["multitask_examples"] >= seen["examples_seen"]).all()  # E's exposure guarantee


def test_training_keeps_one_small_checkpoint_per_run(tiny_run):
    runs = [d for d in (tiny_run / "ray_storage").iterdir() if d.is_dir() and not d.name.startswith("train-")]
    kept = {run.name: [c for c in run.glob("checkpoint_*") if c.is_dir()] for run in runs}
    assert any(kept.values())  # E evaluated (and checkpointed) several times: only the latest is kept
    assert all(len(checkpoints) <= 1 for checkpoints in kept.values()), kept
    for states in (tiny_run / "ray_storage").rglob("*model_states.pt"):
        assert all("lora_" in name for name in torch.load(states, weights_only=False)["module"])


def test_report_and_manifest(tiny_run):
    assert {p.stem for p in (tiny_run / "figures").glob("*.png")} >= FIGURES
    html = (tiny_run / "report.html").read_text()
    assert "data:image/png;base64" in html and html.count("<img") >= len(FIGURES)
    assert html.index("id='findings'") < html.index("id='figures'")  # the verdicts come first
    assert "Does the layer map survive other measures?" in html
    assert (tiny_run / "report.html").stat().st_size > 10_000
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"train", "evaluate", "extract", "analyze", "report"}
    assert manifest["config"]["name"] == "tiny" and "ray" in manifest["versions"]


def test_console_is_quiet_and_the_logs_are_complete(tiny_run):
    console = (tiny_run / "console.txt").read_text()
    lines = console.strip().splitlines()
    assert len(lines) <= 60, console
    for noise in ("TrainingReport(", "core_worker", "Running Dataset"):
        assert noise not in console
    assert sum("best val loss" in line for line in lines) == 1 + len(TASKS) + TWINS  # one line per model
    assert "report:" in console
    assert (tiny_run / "logs" / "layerwise.log").stat().st_size > 0
    assert any((tiny_run / "logs" / "ray").rglob("worker-*"))


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
