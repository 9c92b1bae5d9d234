"""Published checkpoints as experimental models (model.experimental): loaded, not trained, compared
with the controls like E. One tiny run with training.multitask: false compares two of them, a full
model saved with save_pretrained from the tiny base (some blocks perturbed) and the LoRA adapter an
earlier tiny run trained as its E; the failures are one line, before Ray starts."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from runner.config import load_config, preset_path
from tests.conftest import TINY, layerwise

CONFIG = load_config(preset_path("tiny"))
TASKS = CONFIG.tasks.select
LAYERS = CONFIG.model.tiny.num_layers + 1
FULL, ADAPTER = "chat", "adapter"  # the full model's label (given), the adapter's (derived from its folder)


def _base():
    from runner.models import load_base_model, load_tokenizer, resolve_model

    base = resolve_model(CONFIG.model)
    return base, load_base_model(base, "cpu", torch.float32), load_tokenizer(base)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """<dir>/full (the tiny base, its upper blocks perturbed, save_pretrained), <dir>/adapter (the E an
    earlier tiny run trained and saved: a peft LoRA of the base) and <dir>/narrow (hidden size 32)."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    out = tmp_path_factory.mktemp("published")
    base, model, tokenizer = _base()
    with torch.no_grad():
        noise = torch.Generator().manual_seed(1)
        for name, param in model.named_parameters():
            if ".layers.2." in name or ".layers.3." in name:
                param.add_(0.05 * torch.randn(param.shape, generator=noise))
    model.save_pretrained(out / "full")
    tokenizer.save_pretrained(out / "full")
    (trained_e,) = (tiny_run / "models").glob("multitask-*")
    shutil.copytree(trained_e, out / ADAPTER)
    narrow = AutoConfig.from_pretrained(base)
    narrow.hidden_size, narrow.head_dim = 32, 8
    AutoModelForCausalLM.from_config(narrow).save_pretrained(out / "narrow")
    tokenizer.save_pretrained(out / "narrow")
    return out


def _config(tmp: Path, experimental: list[dict], multitask: bool = False) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["model"]["experimental"] = experimental
    data["training"]["multitask"] = multitask
    path = tmp / "published.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def published_run(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The run starts from the tiny run's controls: neither the published models nor training.multitask
    is part of a control's key, so they are reused (as a user's second run would) and nothing trains."""
    import shutil

    out = tmp_path_factory.mktemp("published-run")
    for control in (tiny_run / "models").glob("control-*"):
        shutil.copytree(control, out / "run" / "models" / control.name)
    config = _config(out, [{"name": str(checkpoints / "full"), "label": FULL}, {"name": str(checkpoints / ADAPTER)}])
    result = layerwise("run", "--config", str(config), "--out", str(out / "run"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "already trained, skipping" in result.stderr
    (out / "run" / "console.txt").write_text(result.stdout + result.stderr)
    return out / "run"


def test_published_models_are_compared_with_the_controls_at_every_layer(published_run):
    for name in ("similarity", "cka"):
        frame = pl.read_parquet(published_run / f"{name}.parquet")
        if name == "similarity":
            frame = frame.filter((pl.col("measure") == "linear_cka") & (pl.col("control") == "control")
                                 & ~pl.col("experimental").str.starts_with("control@"))  # not the noise floor's rows
        cells = set(zip(frame["experimental"], frame["task"], frame["layer"]))
        expected = {(e, t, layer) for e in ("pretrained", FULL, ADAPTER) for t in TASKS for layer in range(LAYERS)}
        assert cells == expected, name  # no E: training.multitask is false
    cka = pl.read_parquet(published_run / "cka.parquet")
    last = dict(cka.filter(pl.col("layer") == LAYERS - 1).group_by("experimental").agg(pl.col("cka").mean()).iter_rows())
    assert last[FULL] != pytest.approx(last["pretrained"]) and last[ADAPTER] != pytest.approx(last["pretrained"])


def test_published_models_get_gaps_layer_map_findings_and_scores(published_run):
    for name in ("gaps", "layer_map", "findings"):
        frame = pl.read_parquet(published_run / f"{name}.parquet")
        assert frame["experimental"].unique(maintain_order=True).to_list() == [FULL, ADAPTER], name
    scores = pl.read_parquet(published_run / "eval.parquet")
    twins = scores.filter(pl.col("model").str.starts_with("control@"))  # the noise floor, on its own tasks
    assert set(scores["model"]) == {"pretrained", FULL, ADAPTER, "control", *twins["model"]}
    assert scores.join(twins, on="model", how="anti").group_by("model").len()["len"].to_list() == [len(TASKS)] * 4
    eval_gaps = pl.read_parquet(published_run / "eval_gaps.parquet")
    assert eval_gaps["experimental"].unique(maintain_order=True).to_list() == [FULL, ADAPTER]
    assert eval_gaps.group_by("experimental").len()["len"].to_list() == [len(TASKS)] * 2
    html = (published_run / "report.html").read_text()
    assert "published checkpoint, not trained here" in html and "id='experimentals'" in html


def test_training_frame_marks_published_models_untrained(published_run, checkpoints):
    training = pl.read_parquet(published_run / "training.parquet")
    published = training.filter(~pl.col("trained")).sort("label")
    assert published["label"].to_list() == [ADAPTER, FULL]
    assert published["source"].to_list() == [str(checkpoints / ADAPTER), str(checkpoints / "full")]
    assert published["kind"].to_list() == ["adapter", "full"] and published["steps"].is_null().all()
    trained = training.filter(pl.col("trained"))
    assert set(trained["role"]) == {"control"} and trained["steps"].null_count() == 0  # no E job
    assert not list((published_run / "models").glob("multitask-*"))


def test_dry_run_shows_the_published_models(checkpoints, tmp_path):
    config = _config(tmp_path, [{"name": str(checkpoints / "full"), "label": FULL}], multitask=True)
    result = layerwise("run", "--config", str(config), "--out", str(tmp_path / "out"), "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"[load] {FULL}" in result.stdout and "published, loaded and not trained" in result.stdout
    assert "multitask" in result.stdout  # E is still trained when training.multitask is true


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("layerwise: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_model_of_another_hidden_size_fails_in_one_line_before_ray(checkpoints, tmp_path):
    config = _config(tmp_path, [{"name": str(checkpoints / "narrow")}])
    result = layerwise("run", "--config", str(config), "--out", str(tmp_path / "out"))
    line = _one_line_error(result)
    assert "hidden size is 32, the base's is 64" in line and "narrow" in line
    assert not (tmp_path / "out" / "logs" / "ray").exists() and not (tmp_path / "out" / "models").exists()


@pytest.mark.parametrize("entries, words", [
    ([{"name": "org/chat-a", "label": "x"}, {"name": "org/chat-b", "label": "x"}], "used by two entries"),
    ([{"name": "org/model", "label": "multitask"}], "one of the study's own models"),
    ([{"name": "org/control@1"}], "one of the study's own models"),
])
def test_colliding_labels_are_a_one_line_config_error(entries, words, tmp_path):
    config = _config(tmp_path, entries)
    line = _one_line_error(layerwise("run", "--config", str(config), "--out", str(tmp_path / "out"), "--dry-run"))
    assert words in line and "label" in line


def test_no_experimental_model_at_all_is_a_config_error(tmp_path):
    line = _one_line_error(layerwise("run", "--config", str(_config(tmp_path, [])), "--out", str(tmp_path / "o")))
    assert "training.multitask is false and model.experimental is empty" in line


def test_locate_tells_adapters_full_models_and_gguf_apart_from_metadata(checkpoints, tmp_path):
    from runner.config import ExternalModelConfig
    from runner.models.external import ADAPTER as ADAPTER_KIND
    from runner.models.external import FULL as FULL_KIND
    from runner.models.external import GGUF, locate
    from runner.models.resolve import ModelUnavailableError

    gguf = _write_gguf(tmp_path / "narrow.gguf", hidden=32)
    kinds = {name: locate(ExternalModelConfig(name=str(path))).kind
             for name, path in (("full", checkpoints / "full"), ("adapter", checkpoints / ADAPTER), ("gguf", gguf))}
    assert kinds == {"full": FULL_KIND, "adapter": ADAPTER_KIND, "gguf": GGUF}
    assert locate(ExternalModelConfig(name=str(gguf))).label == "narrow"
    with pytest.raises(ModelUnavailableError, match="no such file or folder"):
        locate(ExternalModelConfig(name=str(tmp_path / "missing")))


def _write_gguf(path: Path, hidden: int) -> Path:
    """A GGUF file whose header describes a 4-block Llama of width `hidden` (a single small tensor)."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_embedding_length(hidden)
    writer.add_block_count(CONFIG.model.tiny.num_layers)
    writer.add_token_list([f"t{i}" for i in range(8)])
    writer.add_tensor("token_embd.weight", np.zeros((8, hidden), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_or_adapter_of_another_shape_is_caught_from_its_header(checkpoints, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from runner.config import ExternalModelConfig
    from runner.models.external import locate
    from runner.models.shape import mismatch

    base = _base()[0]
    gguf = locate(ExternalModelConfig(name=str(_write_gguf(tmp_path / "m.gguf", hidden=32))))
    assert mismatch(gguf, base) == "its hidden size is 32, the base's is 64"
    narrow = AutoModelForCausalLM.from_pretrained(checkpoints / "narrow")
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    get_peft_model(narrow, lora).save_pretrained(tmp_path / "narrow-adapter")
    problem = mismatch(locate(ExternalModelConfig(name=str(tmp_path / "narrow-adapter"))), base)
    assert problem is not None and "hidden size 32" in problem
    assert mismatch(locate(ExternalModelConfig(name=str(checkpoints / ADAPTER))), base) is None
    assert mismatch(locate(ExternalModelConfig(name=str(checkpoints / "full"))), base) is None
