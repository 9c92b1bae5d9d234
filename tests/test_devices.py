"""Device and precision follow the config and the hardware, through the functions the GPU path uses."""

import pytest
import torch

from runner.config import ModelConfig, load_config, preset_path
from runner.models import ModelUnavailableError, pick_device, pick_dtype
from runner.train_worker import deepspeed_config


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


def test_deepspeed_precision_and_batch_follow_device_and_workers():
    exp = load_config(preset_path("demo"))
    on_gpu, on_cpu = deepspeed_config(exp, 64, 4, "cuda"), deepspeed_config(exp, 8, 1, "cpu")
    assert on_gpu["bf16"]["enabled"] and not on_gpu["fp16"]["enabled"]
    assert not on_cpu["bf16"]["enabled"] and not on_cpu["fp16"]["enabled"]
    assert on_gpu["train_micro_batch_size_per_gpu"] == 16 and on_gpu["train_batch_size"] == 64
    assert on_cpu["zero_optimization"]["stage"] == 2
    paper = load_config(preset_path("paper"))
    assert deepspeed_config(paper, 64, 4, "cuda")["bf16"]["enabled"]


def test_inference_dtype_applies_to_forward_only_stages():
    cfg = ModelConfig(name="tiny-llama", inference_dtype="bfloat16")
    assert pick_dtype(cfg, "cpu") == torch.float32  # training keeps the model dtype
    assert pick_dtype(cfg, "cuda", inference=True) == torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert pick_dtype(cfg, "cpu", inference=True) == (torch.bfloat16 if native else torch.float32)
    assert pick_dtype(ModelConfig(name="tiny-llama"), "cpu", inference=True) == torch.float32
