"""The memory plan: calibrated against the H200 measurements, keeps every job's global batch,
fits the paper's jobs on the GPUs the cluster uses and refuses what cannot fit in one line."""

import pytest

from runner.config import ConfigError, load_config, preset_path
from runner.models.architectures import TESTED_FAMILIES
from runner.plan import CONTROL, MULTITASK, TaskRef, TrainJob, make_plan
from runner.training.memory import (
    CALIBRATION,
    GPUS,
    H200_TOKENS_PER_S,
    HEADROOM,
    KNOWN_SHAPES,
    ModelShape,
    calibration_rows,
    gpu_named,
    plan_job_memory,
    predicted_tokens_per_s,
    shape_of,
)

LLAMA2_7B = KNOWN_SHAPES["meta-llama/Llama-2-7b-hf"]


def paper(**overrides):
    return load_config(preset_path("paper"), overrides)


def jobs(config, tmp_path):
    plan = make_plan(config, tmp_path, [TaskRef("rte", "nli"), TaskRef("sst2", "sentiment")])
    return plan.job(MULTITASK), plan.job(f"{CONTROL}-rte")


def test_estimate_reproduces_the_h200_table_within_ten_percent():
    rows = calibration_rows()
    assert len(rows) == sum(len(t) for t in CALIBRATION.values()) == 10
    for row in rows:
        assert abs(row["error"]) <= 0.10, row
    # The step rate at the paper's setting follows from the measured MFU and 6N per token.
    control = TrainJob.standalone(paper(), CONTROL, ["c"], batch_size=16, workers=1, gpus_per_worker=1)
    plan = plan_job_memory(paper(), control, GPUS["H200"].memory_gib, shape=LLAMA2_7B, gpu="H200")
    assert (plan.micro_batch, plan.accumulation, plan.checkpointing) == (16, 1, False)
    assert predicted_tokens_per_s(plan, LLAMA2_7B, GPUS["H200"].bf16_tflops) == pytest.approx(H200_TOKENS_PER_S, rel=0.02)


def test_shapes_from_hf_config_match_the_table():
    hf = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
          "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False}
    shape = ModelShape.from_hf_config(hf)
    assert shape == LLAMA2_7B
    assert shape.params == pytest.approx(6.74e9, rel=0.001)
    assert shape.lora_params(8, ["q_proj", "v_proj"]) == 32 * 2 * 8 * (4096 + 4096)
    assert shape_of(paper()) == LLAMA2_7B
    tiny = load_config(preset_path("tiny"))
    assert shape_of(tiny).hidden == tiny.model.tiny.hidden_size


@pytest.mark.parametrize("gpu", list(GPUS))
def test_global_batch_is_kept_on_every_gpu(gpu, tmp_path):
    config = paper()
    for job in jobs(config, tmp_path):
        plan = plan_job_memory(config, job, GPUS[gpu].memory_gib, gpu=gpu)
        assert plan.fits and plan.estimated_gib <= plan.capacity_gib == pytest.approx(GPUS[gpu].memory_gib * HEADROOM)
        assert plan.micro_batch * plan.accumulation * plan.workers == job.batch_size
        assert plan.workers == job.workers
        assert f"of {GPUS[gpu].memory_gib:.0f}" in plan.describe()


def test_plans_on_the_cluster_gpus(tmp_path):
    e, control = jobs(paper(), tmp_path)
    h100 = plan_job_memory(paper(), control, GPUS["H100"].memory_gib)
    assert (h100.micro_batch, h100.accumulation, h100.checkpointing) == (8, 2, False)
    assert h100.describe().startswith("micro-batch 8 x 2 accumulation, no checkpointing, ~54 GiB of 79")
    l40s = plan_job_memory(paper(), e, GPUS["L40S"].memory_gib)  # cluster.yaml's GPU
    assert (l40s.micro_batch, l40s.accumulation, l40s.workers, l40s.checkpointing) == (4, 4, 4, False)
    # 24 GB: checkpointing with a larger micro-batch beats micro-batch 1 without (43% vs 23.5% MFU measured).
    a10g = plan_job_memory(paper(), control, GPUS["A10G"].memory_gib)
    assert a10g.checkpointing and a10g.micro_batch * a10g.accumulation == 16 and a10g.fits


def test_forced_settings_are_respected_or_refused_in_one_line(tmp_path):
    _, control = jobs(paper(), tmp_path)
    off = plan_job_memory(paper(**{"training.gradient_checkpointing": "off"}), control, 22.0)
    assert (off.micro_batch, off.checkpointing) == (1, False)
    fixed = plan_job_memory(paper(**{"training.micro_batch_size": 4}), control, 79.1)
    assert (fixed.micro_batch, fixed.accumulation) == (4, 4)
    on = plan_job_memory(paper(**{"training.gradient_checkpointing": "on"}), control, 139.8)
    assert on.checkpointing and on.micro_batch == 16
    with pytest.raises(ConfigError) as err:
        plan_job_memory(paper(**{"training.micro_batch_size": 16, "training.gradient_checkpointing": "off"}),
                        control, 22.0, gpu="A10G")
    message = str(err.value)
    assert "\n" not in message
    assert "training.micro_batch_size 16" in message and "training.max_length" in message
    assert "resources.gpu_type" in message
    with pytest.raises(ConfigError, match="must divide"):
        plan_job_memory(paper(**{"training.micro_batch_size": 3}), control, 80.0)


def test_nothing_fits_says_what_to_change(tmp_path):
    config = paper(**{"model.name": "meta-llama/Llama-2-13b-hf"})
    _, control = jobs(config, tmp_path)
    with pytest.raises(ConfigError) as err:
        plan_job_memory(config, control, GPUS["A10G"].memory_gib, gpu="A10G")
    assert "\n" not in str(err.value)
    for hint in ("does not fit", "training.max_length", "resources.gpu_type"):
        assert hint in str(err.value)
    loose = plan_job_memory(config, control, GPUS["A10G"].memory_gib, gpu="A10G", strict=False)
    assert not loose.fits and "DOES NOT FIT" in loose.describe()


def test_dry_run_hints_and_cpu_jobs(tmp_path):
    _, control = jobs(paper(**{"resources.gpu_type": "A100-40GB"}), tmp_path)
    hinted = plan_job_memory(paper(**{"resources.gpu_type": "A100-40GB"}), control)
    assert hinted.gpu == "A100-40GB" and hinted.capacity_gib == pytest.approx(GPUS["A100-40GB"].memory_gib * HEADROOM)
    sized = plan_job_memory(paper(**{"resources.gpu_memory_gb": 140}), control)
    assert sized.micro_batch == 16
    with pytest.raises(ConfigError, match="resources.gpu_type"):
        plan_job_memory(paper(**{"resources.gpu_type": "TPU"}), control)
    tiny = load_config(preset_path("tiny"))
    e, control = jobs(tiny, tmp_path)
    cpu = plan_job_memory(tiny, e)
    assert (cpu.device, cpu.micro_batch, cpu.accumulation, cpu.workers) == ("cpu", 2, 1, 2)
    assert cpu.estimated_gib is None and "CPU" in cpu.describe()
    micro = plan_job_memory(load_config(preset_path("tiny"), {"training.micro_batch_size": 1}), control)
    assert (micro.micro_batch, micro.accumulation) == (1, 4)


def test_gpu_names_from_cuda():
    assert gpu_named("NVIDIA H100 80GB HBM3") == "H100"
    assert gpu_named("NVIDIA A100-SXM4-40GB") == "A100-40GB"
    assert gpu_named("NVIDIA L40S") == "L40S" and gpu_named("NVIDIA L4") == "L4"
    assert gpu_named("Tesla T4") is None


# Gemma 3 270M's config.json as the built-in's conversion writes it (the keys ModelShape reads).
GEMMA3_270M_CONFIG = {"model_type": "gemma3_text", "hidden_size": 640, "num_hidden_layers": 18, "num_attention_heads": 4,
                      "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 2048, "vocab_size": 262144,
                      "tie_word_embeddings": True}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def test_gemma3_shape_matches_a_real_gemma3_model():
    """Attention wider than the hidden size and one KV head (as in Gemma 3 270M), four norms per
    block plus per-head query and key norms: the shape's counts equal a real transformers model's,
    and lora_params equals peft's trainable count on every linear layer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from runner.models.architectures import tiny_config

    config = tiny_config("gemma3_text", hidden_size=48, num_layers=3, num_heads=4, intermediate_size=96, vocab_size=200,
                         head_dim=32, tie_word_embeddings=True)
    with torch.device("meta"):  # counts only: no weights to initialise
        model = AutoModelForCausalLM.from_config(config)
    shape = ModelShape.from_hf_config(config.to_dict())
    assert (shape.heads * shape.dim_per_head, shape.kv_heads) == (128, 1)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.block_params == shape.params - model.get_input_embeddings().weight.numel()
    block = model.model.layers[0]
    linears = {name.rsplit(".", 1)[-1]: (m.in_features, m.out_features) for name, m in block.named_modules()
               if isinstance(m, torch.nn.Linear)}
    assert linears == shape.module_dims()
    lora = get_peft_model(model, LoraConfig(r=8, target_modules=ALL_LINEAR))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert shape.lora_params(8, ALL_LINEAR) == trainable

    real = ModelShape.from_hf_config(GEMMA3_270M_CONFIG)
    assert real == KNOWN_SHAPES["gemma3-270m"] == KNOWN_SHAPES["google/gemma-3-270m"]
    assert real.params == 268_098_176  # the converted checkpoint's parameter count
    assert real.lora_params(8, ALL_LINEAR) == 18 * 8 * (640 + 1024 + 2 * (640 + 256) + 1024 + 640 + 3 * (640 + 2048))
    assert KNOWN_SHAPES["smollm2-135m"].params == 134_515_008


@pytest.mark.parametrize("family", TESTED_FAMILIES)
def test_every_family_shape_counts_a_real_model_from_its_own_config(family):
    """From each family's own config (GPT-2's n_embd/n_layer/n_head included): the shape's block
    parameters equal the real model's blocks and final norm, and lora_params equals peft's trainable
    count on the family's default LoRA targets (the memory plan's two inputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from runner.models.architectures import decoder_layout, default_lora_targets, tiny_config

    config = tiny_config(family, hidden_size=64, num_layers=3, num_heads=4, intermediate_size=96, vocab_size=256)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    layout = decoder_layout(model)
    real = sum(p.numel() for p in layout.blocks.parameters())
    real += sum(p.numel() for p in layout.final_norm.parameters()) if layout.final_norm is not None else 0
    shape = ModelShape.from_hf_config(config.to_dict())
    assert (shape.hidden, shape.layers, shape.heads) == (64, 3, 4)
    assert shape.block_params == real
    targets = default_lora_targets(config.model_type)
    lora = get_peft_model(model, LoraConfig(r=8, target_modules=targets))
    assert shape.lora_params(8, targets) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
