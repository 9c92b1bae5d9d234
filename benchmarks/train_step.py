"""Training step speed and memory: the project's trainer (runner.training.trainer) on random weights.

Two cases, one line each:
- full:  every sequence at max_length (no padding);
- mixed: lengths uniform in 64-1024 tokens (on the tiny CPU model scaled to max_length/16 -
         max_length), grouped by length within windows of `training.length_window` batches.
Each line has pad-fraction, tokens-per-s (padded slots) and real-tokens-per-s, mfu (6N FLOPs per
real token against the dense matmul rate measured in this run: bf16 on a GPU, fp32 on a CPU; N =
the transformer blocks' parameters), peak-memory-gib (GPU) and estimated-memory-gib (runner.training.memory).
It first prints runner.training.memory's estimate beside the H200 measurements it was calibrated on.

    python benchmarks/train_step.py                       # tiny random Llama on CPU
    python benchmarks/train_step.py --shape smollm2-135m --batch 8 --max-length 48 --threads 1 --loss hf
    python benchmarks/train_step.py --shape gemma3-270m --batch 6 --max-length 64 --threads 1 --targets all --cases full
    python benchmarks/train_step.py --shape llama-2-7b    # random bf16 weights on a GPU, no download
    python benchmarks/train_step.py --setup               # reloading the base per job vs reusing it

Imports neither Ray nor polars (a lent GPU box has neither).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import runner.training.trainer as trainer_mod  # noqa: E402
from analysis.roles import CONTROL  # noqa: E402
from benchmarks.peak import matmul_rate, sync  # noqa: E402
from runner.config import parse_config  # noqa: E402
from runner.plan import TrainJob  # noqa: E402
from runner.training.batching import IGNORE, length_buckets, padding_fraction  # noqa: E402
from runner.training.memory import GPUS, KNOWN_SHAPES, TARGET_FRACTION, ModelShape, calibration_rows, estimate_memory, gpu_named  # noqa: E402
from runner.training.trainer import Base, Trainer, ensure_process_group  # noqa: E402

SHAPES = {"tiny": None, "smollm2-135m": KNOWN_SHAPES["smollm2-135m"], "gemma3-270m": KNOWN_SHAPES["gemma3-270m"],
          "llama-2-7b": KNOWN_SHAPES["meta-llama/Llama-2-7b-hf"]}
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TINY = {"hidden_size": 64, "num_layers": 4, "num_heads": 4, "intermediate_size": 128, "vocab_size": 512}


def hf_config(shape: ModelShape):
    """A transformers config of this shape: Llama's, or Gemma 3's (local and global attention, as released)."""
    from transformers import AutoConfig

    common = dict(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                  num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                  head_dim=shape.dim_per_head, tie_word_embeddings=shape.tied, pad_token_id=0, bos_token_id=1,
                  eos_token_id=2)
    if shape.model_type == "gemma3_text":  # Gemma 3 270M's: 512-token windows, one global layer in six
        return AutoConfig.for_model("gemma3_text", **common, query_pre_attn_scalar=shape.dim_per_head,
                                    sliding_window=512, max_position_embeddings=32768)
    return AutoConfig.for_model("llama", **common, max_position_embeddings=4096)


def build_model(shape_name: str, device: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    shape = SHAPES[shape_name] or ModelShape(hidden=TINY["hidden_size"], layers=TINY["num_layers"],
                                             heads=TINY["num_heads"], kv_heads=TINY["num_heads"],
                                             intermediate=TINY["intermediate_size"], vocab=TINY["vocab_size"], tied=True)
    config = hf_config(shape)
    torch.manual_seed(0)
    with torch.device(device):  # built in place: a 7B model never passes through host memory
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model, shape


def experiment(shape_name: str, args, device: str):
    name = "tiny-llama" if shape_name == "tiny" else next(k for k, v in KNOWN_SHAPES.items() if v == SHAPES[shape_name])
    return parse_config({
        "model": {"name": name, "device": device, "tiny": TINY},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": args.targets},
        "training": {"batch_size": args.batch, "control_batch_size": args.batch, "max_length": args.max_length,
                     "micro_batch_size": args.micro_batch, "gradient_checkpointing": args.checkpointing,
                     "length_window": args.window, "lr": 1e-4},
        "deepspeed": {"zero_stage": 2, "precision": "auto"},
        "resources": {"gpus_per_worker": 1 if device == "cuda" else 0, "control_workers": 1, "multitask_workers": 1},
    }, "<benchmark>")


def examples(lengths: np.ndarray, vocab: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Random token ids; the last TARGET_FRACTION of each sequence is the target (the memory plan's assumption)."""
    rng = np.random.default_rng(seed)
    out = []
    for length in lengths.tolist():
        ids = rng.integers(3, vocab, size=length).tolist()
        targets = max(1, round(TARGET_FRACTION * length))
        out.append((ids, [IGNORE] * (length - targets) + ids[length - targets:]))
    return out


def hf_loss(model, input_ids, attention_mask, labels, num_items=None):
    """The previous loss: HF's, with the LM head at every position (for --loss hf)."""
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss
    if num_items is None:
        return loss
    return loss * (labels[:, 1:] != IGNORE).sum()


def run_case(case: str, exp, base: Base, shape: ModelShape, args, device: str, rate: float,
             peak_tflops: float | None) -> None:
    n = max(args.batch * (args.steps + args.warmup) * 2, 256)
    rng = np.random.default_rng(1)
    if case == "full":
        lengths = np.full(n, args.max_length)
    else:
        lo, hi = (64, 1024) if args.max_length >= 1024 else (max(2, args.max_length // 16), args.max_length)
        lengths = rng.integers(lo, hi + 1, size=n)
    train = examples(lengths, shape.vocab, seed=2)
    val = train[: args.batch]
    job = TrainJob.standalone(exp, CONTROL, ["bench"], id=f"bench-{case}", max_steps=10**9, batch_size=args.batch,
                              workers=1, gpus_per_worker=1 if device == "cuda" else 0, key="bench", seed=0)
    trainer = Trainer(job, base, train, val, ["bench"] * len(train), pad_id=0)
    for _ in range(args.warmup):
        trainer.train_step()
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = trainer.state.step
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    sync(device)
    seconds = time.perf_counter() - start
    batches = [b for s in range(first, trainer.state.step)
               for b in trainer.schedule.micro_batches(s, 0, 1, trainer.memory.micro_batch)]
    real = sum(int(lengths[i]) for b in batches for i in b)
    slots = sum(int(lengths[b].max()) * len(b) for b in batches)
    mfu = 6 * shape.block_params * real / seconds / rate
    datasheet = f"  mfu-datasheet: {mfu * rate / (peak_tflops * 1e12):.3f}" if peak_tflops else ""
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if device == "cuda" else "n/a"
    if trainer.memory.estimated_gib is not None:
        estimated = trainer.memory.estimated_gib
    else:  # CPU: no plan; the same arithmetic in fp32 without the GPU's fixed overhead, for scale
        part = estimate_memory(shape, micro_batch=trainer.memory.micro_batch, max_length=args.max_length,
                               checkpointing=trainer.memory.checkpointing, lora_r=8, targets=args.targets,
                               lora_dropout=0.05, dtype_bytes=4)
        estimated = part.total - part.overhead
    eval_lengths = [len(ids) for ids, _ in train[:512]]
    eval_pad = padding_fraction(eval_lengths, length_buckets(eval_lengths, args.batch))
    print(f"{case:<5} pad-fraction: {1 - real / slots:.3f}  tokens-per-s: {slots / seconds:,.0f}  "
          f"real-tokens-per-s: {real / seconds:,.0f}  mfu: {mfu:.3f}{datasheet}  peak-memory-gib: {peak}  "
          f"estimated-memory-gib: {estimated:.1f}  step-s: {seconds / args.steps:.3f}  "
          f"eval-pad-fraction: {eval_pad:.3f}  plan: {trainer.memory.describe()}", flush=True)
    trainer.close()


def setup_cost(shape_name: str, device: str, dtype: torch.dtype, args) -> None:
    """A job's fixed cost with the base loaded from disk for it, and with the worker's base reused."""
    model, shape = build_model(shape_name, device, dtype)
    exp = experiment(shape_name, args, device)
    train = examples(np.full(64, min(args.max_length, 32)), shape.vocab, seed=2)
    job = TrainJob.standalone(exp, CONTROL, ["t"], id="setup", max_steps=1, batch_size=args.batch, workers=1,
                              gpus_per_worker=1 if device == "cuda" else 0, key="k", seed=0)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        del model
        from runner.models import load_base_model

        reload, reuse, base = [], [], None
        for _ in range(3):
            start = time.perf_counter()
            base = Base(load_base_model(folder, device, dtype), device)
            Trainer(job, base, train, train[:4], pad_id=0).close()
            reload.append(time.perf_counter() - start)
        for _ in range(3):
            start = time.perf_counter()
            Trainer(job, base, train, train[:4], pad_id=0).close()
            reuse.append(time.perf_counter() - start)
    print(f"setup  reload-base-s: {min(reload):.3f}  reuse-base-s: {min(reuse):.3f}  "
          f"(load + LoRA + engine per job, best of 3, {shape_name} on {device})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="tiny")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default 16)")
    parser.add_argument("--max-length", type=int, default=None, help="default 1024 on a GPU, 128 on the CPU")
    parser.add_argument("--micro-batch", type=int, default=None, help="default: the memory plan's")
    parser.add_argument("--checkpointing", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--window", type=int, default=8, help="training.length_window")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 GPU, 5 CPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--loss", choices=["targets", "hf"], default="targets",
                        help="targets: LM head at target positions only (the trainer's); hf: at every position")
    parser.add_argument("--cases", default="full,mixed")
    parser.add_argument("--targets", default="q_proj,v_proj",
                        help="LoRA target modules, comma-separated, or 'all' (the block's seven linear layers)")
    parser.add_argument("--setup", action="store_true", help="also time a job's setup: base reloaded vs reused")
    args = parser.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or 16
    args.max_length = args.max_length or (1024 if device == "cuda" else 128)
    args.steps = args.steps or (10 if device == "cuda" else 5)
    args.targets = ALL_LINEAR if args.targets == "all" else args.targets.split(",")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if args.loss == "hf":
        trainer_mod.target_loss = hf_loss  # _TargetLoss looks the loss up at call time

    print("memory estimate vs H200 (Llama-2-7B, ZeRO-2 bf16, LoRA r=8 q/v, 1024 tokens):")
    for row in calibration_rows():
        print(f"  micro-batch {row['micro_batch']:>2} {'checkpointing   ' if row['checkpointing'] else 'no checkpointing'}"
              f"  measured {row['measured_gib']:5.1f} GiB  estimated {row['estimated_gib']:5.1f} GiB  "
              f"({row['error']:+.1%})  measured mfu {row['mfu']:.1%}")

    ensure_process_group(device)
    rate = matmul_rate(dtype, device, 8192 if device == "cuda" else 2048)
    gpu = torch.cuda.get_device_name() if device == "cuda" else f"CPU x {torch.get_num_threads()} threads"
    known = gpu_named(gpu) if device == "cuda" else None
    peak = GPUS[known].bf16_tflops if known else None
    print(f"device {gpu}: measured dense {'bf16' if device == 'cuda' else 'fp32'} matmul {rate / 1e12:.2f} TFLOP/s"
          f"{f' (datasheet {peak:.0f})' if peak else ''}; shape {args.shape}; batch {args.batch} x <= {args.max_length} "
          f"tokens; loss: {args.loss}; LoRA r=8 on {','.join(args.targets)}"
          + ("" if args.max_length >= 1024 or args.shape != "tiny" and device == "cuda" else
             f"; mixed lengths scaled to {max(2, args.max_length // 16)}-{args.max_length}"),
          flush=True)
    model, shape = build_model(args.shape, device, dtype)
    base = Base(model, device)
    exp = experiment(args.shape, args, device)
    for case in args.cases.split(","):
        run_case(case, exp, base, shape, args, device, rate, peak)
    if args.setup:
        del base, model
        setup_cost(args.shape, device, dtype, args)


if __name__ == "__main__":
    main()
