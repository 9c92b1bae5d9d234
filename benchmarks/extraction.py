"""Extraction speed: layerwise's encoder against the authors' loop, on the same probes, in one run.

Naive (the authors' approach): one prompt at a time, the full CausalLM forward with
`output_hidden_states=True`, every layer's [1, length, d] copied to the CPU, then the last token
kept. Fast (runner.inference.encoder.HiddenStateEncoder): length-sorted, left-padded batches through the
bare decoder (no LM head), forward hooks keeping only the last position of each layer.

Also prints the fast path's model FLOP rate, 2 x non-embedding parameters x real (unpadded)
tokens per second, as a fraction of the dense matmul rate measured here for the same dtype.

    python benchmarks/extraction.py [--model gemma3-270m|smollm2-135m|PATH] [--prompts 384] [--batch-size 32]
                                    [--threads 1] [--naive-prompts 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peak import matmul_rate, sync  # noqa: E402
from runner.config import ModelConfig, load_config, preset_path  # noqa: E402
from runner.inference.encoder import HiddenStateEncoder  # noqa: E402
from runner.models import load_base_model, load_tokenizer, pick_device, pick_dtype, resolve_model  # noqa: E402


def probe_prompts(count: int) -> list[str]:
    """The demo's probe instructions, cycling through its tasks."""
    from tasks import load_splits, resolve_tasks

    demo = load_config(preset_path("demo"))
    per_task = [load_splits(spec, probe_size=64, seed=0).probe["prompt"] for spec in resolve_tasks(demo.tasks.select)]
    return [per_task[i % len(per_task)][i // len(per_task)] for i in range(count)]


def naive(model, tokenizer, prompts: list[str], max_length: int, device: str) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = {k: v[:, -max_length:].to(device) for k, v in tokenizer(prompt, return_tensors="pt").items()}
            states = model(**ids, output_hidden_states=True).hidden_states
            on_cpu = [h.float().cpu() for h in states]  # the whole [1, length, d] stack, every layer
            out.append(torch.stack([h[0, -1] for h in on_cpu]).numpy())
    return np.stack(out)


def timed(fn, device: str, repeats: int):
    best, value = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        value = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m", help="a built-in, a local folder or a hub id")
    parser.add_argument("--prompts", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--naive-prompts", type=int, default=None,
                        help="prompts the batch-1 reference runs (default: all; 0 skips it)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = ModelConfig(name=args.model)
    device = pick_device(cfg)
    dtype = pick_dtype(cfg, device)
    model_dir = resolve_model(cfg)
    prompts = probe_prompts(args.prompts)
    tokenizer = load_tokenizer(model_dir)
    real_tokens = sum(min(len(tokenizer(p)["input_ids"]), args.max_length) for p in prompts)
    print(f"device {device}, dtype {str(dtype).removeprefix('torch.')}, torch threads {torch.get_num_threads()}, "
          f"{len(prompts)} probes, {real_tokens} real tokens")

    encoder = HiddenStateEncoder.load(model_dir, device, dtype, {}, args.max_length, args.batch_size)
    encoder.encode(prompts[: args.batch_size], adapter=None)  # warm-up
    fast_s, fast = timed(lambda: encoder.encode(prompts, adapter=None), device, args.repeats)
    print(f"fast (batch {args.batch_size}, bucketed, hooks, no LM head): {fast_s:.2f} s, "
          f"prompts-per-s: {len(prompts) / fast_s:.1f}", flush=True)

    model = encoder.models.model
    params = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name and "lm_head" not in name)
    achieved = 2 * params * real_tokens / fast_s
    peak = matmul_rate(dtype, device)
    print(f"model FLOP rate {achieved / 1e9:.1f} GFLOP/s ({params / 1e6:.1f}M non-embedding parameters); "
          f"dense {str(dtype).removeprefix('torch.')} matmul {peak / 1e9:.1f} GFLOP/s")
    print(f"model FLOP rate as a fraction of the matmul rate, flop-fraction: {achieved / peak:.2f}")

    count = len(prompts) if args.naive_prompts is None else min(args.naive_prompts, len(prompts))
    if count:
        model = load_base_model(model_dir, device, dtype).eval()
        naive(model, tokenizer, prompts[:4], args.max_length, device)  # warm-up
        naive_s, reference = timed(lambda: naive(model, tokenizer, prompts[:count], args.max_length, device), device, 1)
        diff = float(np.abs(fast[:count] - reference).max() / max(np.abs(reference).max(), 1e-12))
        print(f"naive (batch 1, all hidden states to CPU, {count} prompts): {naive_s:.2f} s, prompts-per-s: "
              f"{count / naive_s:.1f}; largest relative difference {diff:.1e}")
        print(f"extraction speed-up: {naive_s / count / (fast_s / len(prompts)):.2f}x")


if __name__ == "__main__":
    main()
