"""Optional benchmarks beyond Flan (the paper's Table 2): lm-evaluation-harness on pretrained vs E.

Driven by `evaluation.harness_tasks`, e.g. ["mmlu", "bbh"]; an entry "name:k" forces k shots,
otherwise MMLU runs 0-shot and BBH 3-shot (the paper's protocol), any other task its own default.
Both models are loaded by the harness itself (`pretrained=<base>` and `pretrained=<base>,peft=<E>`)
inside one Ray task that holds a worker's GPU. The harness downloads its datasets from the hub at
run time, so it is skipped, with one line saying why, when lm_eval is not installed
(`pip install 'layerwise[eval]'`) or the machine is offline. Results: <out>/harness.parquet
(model, benchmark, num_fewshot, metric, score on 0-100). See docs/evaluation.md.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time

import polars as pl

from analysis.roles import MULTITASK, PRETRAINED
from runner.artifacts.store import atomic_write_parquet, is_done, mark_done
from runner.config import stable_hash
from runner.plan import Plan

log = logging.getLogger("layerwise.evaluate")
DEFAULT_SHOTS = {"mmlu": 0, "bbh": 3}
HUB = ("huggingface.co", 443)


def parse_harness_tasks(entries: list[str]) -> list[tuple[str, int | None]]:
    """["mmlu", "bbh:3", "arc_easy"] -> [("mmlu", 0), ("bbh", 3), ("arc_easy", None)]."""
    parsed = []
    for entry in entries:
        name, _, shots = entry.partition(":")
        if shots and not shots.isdigit():
            raise ValueError(f"evaluation.harness_tasks: {entry!r} is not 'task' or 'task:shots'")
        parsed.append((name, int(shots) if shots else DEFAULT_SHOTS.get(name)))
    return parsed


def unavailable_reason() -> str | None:
    """Why the harness cannot run here, or None when it can."""
    if importlib.util.find_spec("lm_eval") is None:
        return "lm_eval is not installed (pip install 'layerwise[eval]')"
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(flag, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"offline ({flag} is set) and its datasets come from the hub"
    try:
        socket.create_connection(HUB, timeout=3).close()
    except OSError:
        return f"offline ({HUB[0]} is unreachable) and its datasets come from the hub"
    return None


def _harness_rows(results: dict, model: str, name: str, shots: int | None) -> list[dict]:
    entry = results.get("groups", {}).get(name) or results["results"].get(name, {})
    rows = []
    for key, value in entry.items():
        metric, _, _filter = key.partition(",")
        if not _filter or metric.endswith("_stderr") or not isinstance(value, (int, float)):
            continue
        rows.append({"model": model, "benchmark": name, "num_fewshot": shots, "metric": key,
                     "score": 100.0 * float(value)})
    return rows


def _evaluate_harness(model_args: dict[str, str], tasks: list[tuple[str, int | None]], device: str,
                      batch_size: int) -> list[dict]:
    from lm_eval import simple_evaluate

    rows = []
    for model, args in model_args.items():
        for name, shots in tasks:
            results = simple_evaluate(model="hf", model_args=args, tasks=[name], num_fewshot=shots,
                                      batch_size=batch_size, device=device)
            rows += _harness_rows(results, model, name, shots)
    return rows


def run_harness(plan: Plan, model_dir: str) -> pl.DataFrame | None:
    """Write <out>/harness.parquet, or log one line and return None when the harness cannot run."""
    import ray

    cfg, out = plan.config, plan.out / "harness.parquet"
    tasks = parse_harness_tasks(cfg.evaluation.harness_tasks)
    names = ", ".join(name for name, _ in tasks)
    reason = unavailable_reason() or ("" if plan.multitask else "the run trains no E (training.multitask: false)")
    if reason:
        log.warning("evaluate: harness benchmarks (%s) skipped: %s", names, reason)
        return None
    key = stable_hash([plan.job(MULTITASK).key, tasks])
    if out.exists() and is_done(plan.out / "harness", key):
        log.info("evaluate: harness.parquet is current, skipping")
        return pl.read_parquet(out)
    dtype = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[cfg.model.dtype]
    base = f"pretrained={model_dir},dtype={dtype}"
    e_dir = plan.job(MULTITASK).out_dir
    tuned = f"pretrained={e_dir},dtype={dtype}" if plan.config.training.method == "full" else f"{base},peft={e_dir}"
    model_args = {PRETRAINED: base, MULTITASK: tuned}
    gpus = 1 if cfg.resources.gpus_per_worker > 0 else 0
    started = time.time()
    log.info("evaluate: lm-evaluation-harness %s for pretrained and multitask (%d GPU)", names, gpus)
    remote = ray.remote(num_cpus=cfg.resources.cpus_per_worker, num_gpus=gpus)(_evaluate_harness)
    rows = ray.get(remote.remote(model_args, tasks, "cuda" if gpus else "cpu", cfg.evaluation.batch_size))
    frame = pl.DataFrame(rows, schema={"model": pl.String, "benchmark": pl.String, "num_fewshot": pl.Int64,
                                       "metric": pl.String, "score": pl.Float64})
    atomic_write_parquet(frame, out)
    mark_done(plan.out / "harness", key, seconds=round(time.time() - started, 2))
    return frame
