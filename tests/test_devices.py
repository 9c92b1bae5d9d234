"""Device and precision follow the config and the hardware, through the functions the GPU path uses."""

import pytest
import torch

from analysis.roles import CONTROL, MULTITASK
from runner.config import ModelConfig, load_config, preset_path
from runner.models import ModelUnavailableError, pick_device, pick_dtype
from runner.plan import TrainJob
from runner.training.memory import GPUS, MemoryPlan, plan_job_memory
from runner.training.trainer import deepspeed_config


def test_auto_picks_bf16_on_cuda_and_fp32_on_cpu():
    auto = ModelConfig(name="tiny-llama")
    assert pick_dtype(auto, "cuda") == torch.bfloat16
    assert pick_dtype(auto, "cpu") == torch.float32
    assert pick_dtype(ModelConfig(name="tiny-llama", dtype="float16"), "cuda") == torch.float16
    assert pick_device(auto) == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_asking_for_cuda_without_a_gpu_says_what_to_do():
    with pytest.raises(ModelUnavailableError, match="model.device: auto"):
        pick_device(ModelConfig(name="tiny-llama", device="cuda"))


def test_deepspeed_precision_and_batch_follow_device_workers_and_the_memory_plan():
    exp = load_config(preset_path("demo"))
    e = TrainJob.standalone(exp, MULTITASK, ["a"], batch_size=64, workers=4, gpus_per_worker=1)
    gpu_plan = plan_job_memory(exp, e, GPUS["H100"].memory_gib, device="cuda")
    cpu_plan = plan_job_memory(exp, TrainJob.standalone(exp, CONTROL, ["a"], batch_size=8, workers=1), device="cpu")
    on_gpu, on_cpu = deepspeed_config(exp, gpu_plan, "cuda"), deepspeed_config(exp, cpu_plan, "cpu")
    assert on_gpu["bf16"]["enabled"] and not on_gpu["fp16"]["enabled"]
    assert not on_cpu["bf16"]["enabled"] and not on_cpu["fp16"]["enabled"]
    assert on_gpu["train_batch_size"] == 64 and on_gpu["train_micro_batch_size_per_gpu"] == gpu_plan.micro_batch
    assert on_gpu["gradient_accumulation_steps"] == gpu_plan.accumulation
    assert on_gpu["train_micro_batch_size_per_gpu"] * on_gpu["gradient_accumulation_steps"] * 4 == 64
    assert (on_cpu["train_batch_size"], on_cpu["train_micro_batch_size_per_gpu"], on_cpu["gradient_accumulation_steps"]) \
        == (8, 8, 1)
    assert on_cpu["zero_optimization"]["stage"] == 2
    paper = load_config(preset_path("paper"))
    control = TrainJob.standalone(paper, CONTROL, ["rte"], batch_size=16, workers=1, gpus_per_worker=1)
    small = deepspeed_config(paper, plan_job_memory(paper, control, GPUS["A10G"].memory_gib), "cuda")
    assert small["bf16"]["enabled"] and small["train_batch_size"] == 16
    assert small["train_micro_batch_size_per_gpu"] * small["gradient_accumulation_steps"] == 16
    broken = MemoryPlan(micro_batch=4, accumulation=2, checkpointing=False, workers=1, batch_size=16,
                        estimated_gib=None, capacity_gib=None, fits=True, device="cpu")
    with pytest.raises(ValueError, match="global batch"):
        deepspeed_config(paper, broken, "cuda")


def test_inference_dtype_applies_to_forward_only_stages():
    cfg = ModelConfig(name="tiny-llama", inference_dtype="bfloat16")
    assert pick_dtype(cfg, "cpu") == torch.float32  # training keeps the model dtype
    assert pick_dtype(cfg, "cuda", inference=True) == torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert pick_dtype(cfg, "cpu", inference=True) == (torch.bfloat16 if native else torch.float32)
    assert pick_dtype(ModelConfig(name="tiny-llama"), "cpu", inference=True) == torch.float32
