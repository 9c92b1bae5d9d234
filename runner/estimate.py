"""A back-of-envelope GPU-hour estimate for `--dry-run`, stated with its assumptions.

Upper bound: every job runs to max_steps with every sequence at max_length (early stopping and
shorter examples only lower it). LoRA training costs about 4N FLOPs per token (forward 2N,
backward through activations 2N; the frozen weights get no gradient); a forward costs 2N.
"""

from __future__ import annotations

from runner.config import ExperimentConfig, TinyModelConfig
from runner.plan import MULTITASK, Plan

PEAK_TFLOPS = 312.0  # A100 bf16 dense
MFU = 0.4            # a realistic fraction of peak for LoRA fine-tuning
KNOWN_PARAMS = {
    "meta-llama/Llama-2-7b-hf": 6.74e9,
    "meta-llama/Llama-2-13b-hf": 13.0e9,
    "meta-llama/Meta-Llama-3-8B": 8.03e9,
    "meta-llama/Llama-3.1-8B": 8.03e9,
    "smollm2-135m": 1.35e8,
    "HuggingFaceTB/SmolLM2-135M-Instruct": 1.35e8,
}


def tiny_params(t: TinyModelConfig) -> float:
    per_layer = 4 * t.hidden_size**2 + 3 * t.hidden_size * t.intermediate_size
    return t.num_layers * per_layer + t.vocab_size * t.hidden_size


def model_params(config: ExperimentConfig) -> float | None:
    if config.model.name == "tiny-llama":
        return tiny_params(config.model.tiny)
    return KNOWN_PARAMS.get(config.model.name)


def gpu_hours(plan: Plan) -> dict[str, float] | None:
    """GPU-hours by phase, or None when the model's size is unknown offline."""
    params = model_params(plan.config)
    if params is None:
        return None
    cfg = plan.config
    rate = PEAK_TFLOPS * 1e12 * MFU
    hours = {"multitask": 0.0, "controls": 0.0}
    for job in plan.jobs:
        flops = 4 * params * job.max_steps * job.batch_size * cfg.training.max_length
        hours["multitask" if job.role == MULTITASK else "controls"] += flops / rate / 3600
    # Each probe goes through the pretrained model, E and its control; each test example is scored likewise.
    forwards = len(plan.tasks) * 3 * (cfg.extraction.probe_size + cfg.tasks.test_size)
    hours["extraction and evaluation"] = 2 * params * forwards * cfg.extraction.max_length / rate / 3600
    hours["total"] = sum(hours.values())
    return hours
