"""training.method full: every weight trains under the same loop (real DeepSpeed ZeRO-2 on CPU), the
best model is saved as a folder transformers loads, and the shared base gets its own weights back."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from runner.config import load_config, preset_path
from runner.models import resolve_model
from runner.training.memory import ModelShape, estimate_memory
from runner.training.trainer import Base, Trainer, ensure_process_group, publish
from tests.test_trainer import TASKS, TRAIN, VAL, job

FULL = {"training.method": "full", "training.lr": 1e-3}


@pytest.fixture(scope="module")
def base() -> Base:
    ensure_process_group("cpu")
    return Base.load(resolve_model(load_config(preset_path("tiny")).model), "cpu", torch.float32)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_full_finetuning_saves_a_model_that_differs_from_the_base_in_every_layer(base, tmp_path):
    before = _weights(base.model)
    trainer = Trainer(job(load_config(preset_path("tiny"), FULL), max_steps=6, key="full"), base, TRAIN, VAL, TASKS)
    assert all(p.requires_grad for p in trainer.model.parameters())
    trainer.run()
    info = publish(trainer, tmp_path / "model")
    assert info["method"] == "full" and info["lora_r"] is None
    assert json.loads((tmp_path / "model" / "training.json").read_text())["steps"] == 6
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    assert (tmp_path / "model" / "config.json").exists() and list((tmp_path / "model").glob("*.safetensors"))

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.float32)
    tuned = _weights(loaded)
    n_layers = loaded.config.num_hidden_layers
    for layer in range(n_layers):
        keys = [k for k in tuned if f"layers.{layer}." in k]
        assert keys and any(not torch.equal(tuned[k], before[k]) for k in keys), f"layer {layer} unchanged"
    # It is the best checkpoint the loop kept, exactly.
    assert all(torch.equal(tuned[k], trainer.best_state[k]) for k in tuned)

    trainer.close()
    after = _weights(base.model)
    assert all(torch.equal(after[k], before[k]) for k in before)  # the next job starts from the pretrained weights
    assert not any(p.requires_grad for p in base.model.parameters())


def test_a_lora_job_after_a_full_one_trains_only_its_adapter(base):
    full = Trainer(job(load_config(preset_path("tiny"), FULL), max_steps=2), base, TRAIN, VAL, TASKS)
    full.run()
    full.close()
    lora = Trainer(job(load_config(preset_path("tiny")), max_steps=2), base, TRAIN, VAL, TASKS)
    trainable = [name for name, p in lora.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    lora.close()


def test_the_memory_plan_counts_optimizer_state_for_every_parameter():
    # Llama-2-7B's shape; ZeRO-2 over 8 workers shards the fp32 state and the gradients.
    shape = ModelShape(model_type="llama", hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32,
                       vocab=32000, tied=False)
    args = dict(micro_batch=1, max_length=1024, checkpointing=True, lora_r=8, targets=["q_proj", "v_proj"],
                lora_dropout=0.05, dtype_bytes=2)
    lora = estimate_memory(shape, **args, workers=1)
    full = estimate_memory(shape, **args, workers=1, method="full")
    sharded = estimate_memory(shape, **args, workers=8, method="full")
    gib = shape.params / 2**30
    assert full.trainable_state == pytest.approx(18 * gib)  # bf16 grad + fp32 master, grad, m, v
    assert lora.trainable_state < 0.05 * full.trainable_state
    assert sharded.trainable_state == pytest.approx(18 * gib / 8)
    assert full.weights == lora.weights


def test_inference_swaps_a_full_models_weights_into_the_one_base(tmp_path):
    """Extraction and evaluation keep one model per actor: a fully fine-tuned model's weights go into the
    base's modules while it is used, and the base's come back after."""
    from runner.models import AdaptedModel

    base_dir = resolve_model(load_config(preset_path("tiny")).model)
    tuned = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuned.save_pretrained(tmp_path / "ft")
    ids = torch.tensor([[5, 9, 17, 33, 2, 71]])
    expect_tuned = tuned(input_ids=ids).logits

    models = AdaptedModel(base_dir, "cpu", torch.float32, {}, weights={"ft": str(tmp_path / "ft")})
    with torch.no_grad():
        with models.use(None):
            base_logits = models.model(input_ids=ids).logits
        with models.use("ft"):
            got = models.model(input_ids=ids).logits
        with models.use(None):
            again = models.model(input_ids=ids).logits
    assert torch.allclose(got, expect_tuned, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-3)
    assert torch.equal(again, base_logits)
