"""The Ray Train worker loop: a peft LoRA model inside a DeepSpeed engine.

One function serves the multi-task model E (N workers) and every control C_t (one worker
each), on CPU (fp32, gloo) and GPU (bf16, NCCL) alike. It evaluates validation loss every
`eval_every` steps, keeps the best adapter, stops early after `patience` evaluations without
improvement, and reports a DeepSpeed checkpoint with each evaluation so that Ray Train can
restart a failed worker group from the last one. Batches are a pure function of the step
(`step_indices`) and dropout is seeded per step, so a restarted job ends with the same adapter.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

import ray
import ray.train
import torch

from runner import metrics
from runner.batching import collate_training, encode_example, step_indices
from runner.config import ExperimentConfig
from runner.models import load_base_model, load_tokenizer, pick_device, pick_dtype
from runner.store import atomic_dir, atomic_write_parquet, is_done, mark_done

STATE_FILE = "loop_state.json"
BEST_FILE = "best_adapter.pt"
DS_TAG = "engine"  # not "latest": DeepSpeed writes a file of that name beside the tag folder


def deepspeed_config(exp: ExperimentConfig, batch_size: int, world_size: int, device: str) -> dict:
    precision = exp.deepspeed.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    return {
        "train_batch_size": batch_size,
        "train_micro_batch_size_per_gpu": batch_size // world_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": exp.deepspeed.zero_stage},
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16"},
        # The client AdamW avoids building DeepSpeed's fused ops, which CPUs lack.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def train_loop_per_worker(config: dict) -> None:
    """Train every unfinished model of one run, in order, on this worker group."""
    exp = ExperimentConfig.model_validate(config["run"]["experiment"])
    device = pick_device(exp.model)
    # DeepSpeed picks its accelerator at import: make it follow the configured device.
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if device == "cuda" else "cpu")
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if device == "cuda":
        torch.cuda.set_device(ray.train.torch.get_device())
    elif exp.resources.cpus_per_worker >= 1:
        torch.set_num_threads(int(exp.resources.cpus_per_worker))
    ctx = ray.train.get_context()
    # Say what runs where: one line per worker, in the driver's log and the dashboard's.
    print(f"[{config['run']['id']}] rank {ctx.get_world_rank()}/{ctx.get_world_size()} pid {os.getpid()} "
          f"on {socket.gethostname()}, {device}, {len(config['run']['jobs'])} model(s)", flush=True)
    tokenizer = load_tokenizer(config["model_dir"])
    checkpoint = ray.train.get_checkpoint()
    for job in config["run"]["jobs"]:
        if is_done(Path(job["out_dir"]), job["key"]):
            continue  # finished before a restart of this run
        _train_one(exp, job, config, tokenizer, device, checkpoint)
        checkpoint = None  # a restored checkpoint belongs to the first unfinished model only


def _train_one(exp: ExperimentConfig, job: dict, config: dict, tokenizer, device: str, checkpoint) -> None:
    import deepspeed
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(exp.training.seed)  # the same LoRA initialisation on every rank
    base = load_base_model(config["model_dir"], device, pick_dtype(exp.model, device))
    model = get_peft_model(base, LoraConfig(
        r=exp.lora.r, lora_alpha=exp.lora.alpha, lora_dropout=exp.lora.dropout,
        target_modules=list(exp.lora.target_modules), task_type="CAUSAL_LM"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=exp.training.lr, weight_decay=exp.training.weight_decay)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                      config=deepspeed_config(exp, job["batch_size"], world, device))

    data = ray.get(config["data_refs"][job["key"]])
    max_len = exp.training.max_length
    train = [encode_example(tokenizer, p, t, max_len) for p, t in zip(data["train_prompt"], data["train_target"])]
    val = [encode_example(tokenizer, p, t, max_len) for p, t in zip(data["val_prompt"], data["val_target"])]
    val_shard = val[rank::world]
    micro = job["batch_size"] // world
    seed = exp.training.seed

    state = {"job": job["id"], "step": 0, "best_val": float("inf"), "bad_evals": 0, "curve": [],
             "stopped_early": False}
    best_adapter = None
    if checkpoint:
        with checkpoint.as_directory() as ckpt_dir:
            saved = json.loads((Path(ckpt_dir) / STATE_FILE).read_text())
            if saved.get("job") == job["id"]:
                engine.load_checkpoint(ckpt_dir, tag=DS_TAG, load_module_strict=False)
                state = saved
                best_adapter = torch.load(Path(ckpt_dir) / BEST_FILE, weights_only=True)
                print(f"[{job['id']}] resumed at step {state['step']} from checkpoint", flush=True)

    def validation_loss() -> float:
        engine.eval()
        total = torch.zeros(2, dtype=torch.float64)
        with torch.no_grad():
            for i in range(0, len(val_shard), micro):
                batch = {k: v.to(engine.device) for k, v in collate_training(
                    val_shard[i: i + micro], tokenizer.pad_token_id).items()}
                tokens = (batch["labels"][:, 1:] != -100).sum()
                total += torch.tensor([engine(**batch).loss.float().item() * tokens.item(), tokens.item()],
                                      dtype=torch.float64)
        if world > 1:
            torch.distributed.all_reduce(total)
        engine.train()
        return float(total[0] / total[1].clamp(min=1))

    max_steps, started, tokens_seen, first_step = job["max_steps"], time.time(), 0, state["step"]
    engine.train()
    while state["step"] < max_steps and not state["stopped_early"]:
        step = state["step"]
        indices = step_indices(step, job["batch_size"], len(train), seed)[rank * micro:(rank + 1) * micro]
        batch = {k: v.to(engine.device) for k, v in collate_training(
            [train[i] for i in indices], tokenizer.pad_token_id).items()}
        torch.manual_seed(seed * 1_000_003 + step)  # dropout masks depend on the step alone
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        tokens_seen += int(batch["attention_mask"].sum())
        state["step"] = step + 1
        last = state["step"] == max_steps
        if state["step"] % exp.training.eval_every and not last:
            continue
        val_loss = validation_loss()
        if val_loss < state["best_val"] - 1e-6:
            state["best_val"], state["bad_evals"] = val_loss, 0
            best_adapter = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
        else:
            state["bad_evals"] += 1
            state["stopped_early"] = state["bad_evals"] >= exp.training.patience
        elapsed = time.time() - started
        point = {"step": state["step"], "train_loss": float(loss.item()), "val_loss": val_loss,
                 "steps_per_s": (state["step"] - first_step) / elapsed, "tokens_per_s": tokens_seen * world / elapsed}
        state["curve"].append(point)
        metrics.record_train_point(job["id"], point)
        report = {**point, "job": job["id"], "best_val_loss": state["best_val"]}
        if last or state["stopped_early"]:
            ray.train.report(report)  # the adapter is published next: nothing left to resume
            continue
        with tempfile.TemporaryDirectory() as ckpt_dir:
            engine.save_checkpoint(ckpt_dir, tag=DS_TAG, exclude_frozen_parameters=True)
            if rank == 0:
                (Path(ckpt_dir) / STATE_FILE).write_text(json.dumps(state))
                torch.save(best_adapter, Path(ckpt_dir) / BEST_FILE)
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir))

    if rank == 0:
        if best_adapter is not None:
            set_peft_model_state_dict(model, best_adapter)
        _save_adapter(model, Path(job["out_dir"]), state)
        mark_done(Path(job["out_dir"]), job["key"], step=state["step"], best_val_loss=state["best_val"],
                  stopped_early=state["stopped_early"], lora_r=exp.lora.r, seed=exp.training.seed)
    if world > 1:
        torch.distributed.barrier()  # no rank starts the next model before the adapter is published


def _save_adapter(model, out_dir: Path, state: dict) -> None:
    """Publish the adapter (standard peft layout) and its loss curve in one atomic rename."""
    import polars as pl

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        atomic_write_parquet(pl.DataFrame(state["curve"]), tmp / "curve.parquet")
        (tmp / "training.json").write_text(json.dumps(
            {k: state[k] for k in ("step", "best_val", "stopped_early")}, indent=2))
