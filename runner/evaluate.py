"""The `evaluate` stage (issue 7): per-task scores of pretrained, E and every C_t.

Each task is scored on its own held-out test split (disjoint from the probe set) by the paper's
metric, on the rows of its forward templates (the inverted ones ask for the input, not the task):
- accuracy, classification: the OPTIONS are ranked by the summed log-probability of
  ` option</s>` after the prompt, tokenised exactly as in training (runner.batching.encode_example);
  every (prompt, option) pair is one row of a right-padded, length-bucketed batch;
- rouge_l, bleu (and accuracy without options): batched greedy generation, capped at
  `evaluation.max_new_tokens`.
Rows stream through a Ray Data actor pool like extraction: each actor loads the base model
once and swaps the LoRA adapters in place. Actors return one prediction per (example, model);
the driver turns them into scores with analysis.scores and writes <out>/eval.parquet (model,
task, cluster, metric, score, n) and <out>/eval_predictions.parquet, skipped when current.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import torch

from analysis.scores import EVAL_COLUMNS, task_score
from runner import metrics
from runner.batching import IGNORE, collate_training, encode_example, length_buckets
from runner.config import ExperimentConfig
from runner.extract import decoder_of
from runner.models import AdaptedModel, pick_device, pick_dtype
from runner.plan import CONTROL, MULTITASK, PRETRAINED, Plan, TaskRef
from runner.store import atomic_write_parquet, is_done, mark_done

log = logging.getLogger("layerwise.evaluate")
RANK, GENERATE = "rank", "generate"


# --- scoring with one model (no Ray): used by the actors and directly by tests ---------------

def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def option_logprobs(model, tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]],
                    max_length: int, batch_size: int) -> list[list[float]]:
    """Summed log-probability of ` option</s>` after each prompt, for every option of every row.

    The decoder runs once per (prompt, option) pair; the LM head and the softmax over the
    vocabulary run only at the few positions that predict an option token, not at every position.
    """
    pairs = [(row, encode_example(tokenizer, prompt, option, max_length))
             for row, (prompt, opts) in enumerate(zip(prompts, options)) for option in opts]
    totals = torch.empty(len(pairs), dtype=torch.float64)
    device = _device_of(model)
    decoder, head = decoder_of(model), model.get_output_embeddings()
    for bucket in length_buckets([len(ids) for _, (ids, _) in pairs], batch_size):
        batch = {k: v.to(device) for k, v in collate_training([pairs[i][1] for i in bucket],
                                                               tokenizer.pad_token_id).items()}
        hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         use_cache=False).last_hidden_state
        labels = batch["labels"][:, 1:]
        rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
        logprobs = torch.log_softmax(head(hidden[rows, cols]).float(), dim=-1)
        picked = logprobs.gather(1, labels[rows, cols].unsqueeze(1)).squeeze(1).double()
        per_row = torch.zeros(len(bucket), dtype=torch.float64, device=picked.device).index_add_(0, rows, picked)
        totals[bucket] = per_row.cpu()
    out: list[list[float]] = [[] for _ in prompts]
    for (row, _), total in zip(pairs, totals.tolist()):
        out[row].append(total)
    return out


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, max_length: int,
                    batch_size: int) -> list[str]:
    """Greedy continuations (special tokens dropped, whitespace stripped), in the order of `prompts`.

    Prompts are tokenised as in training (no special tokens), cut from the left to leave room for
    the new tokens, and left-padded so every row continues from its own last token.
    """
    keep = max(1, max_length - max_new_tokens) if max_new_tokens < max_length else max(1, max_length // 2)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"][-keep:] or [tokenizer.eos_token_id]
               for p in prompts]
    device, out = _device_of(model), [""] * len(prompts)
    for bucket in length_buckets([len(ids) for ids in encoded], batch_size):
        width = max(len(encoded[i]) for i in bucket)
        input_ids = torch.full((len(bucket), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(bucket), width), dtype=torch.long)
        for row, i in enumerate(bucket):
            input_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                   do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        for i, text in zip(bucket, texts):
            out[i] = text.strip()
    return out


def predict(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int, max_length: int,
            batch_size: int) -> list[str]:
    """One prediction per row: the top-ranked option ("rank" rows) or the greedy output ("generate")."""
    preds = [""] * len(rows)
    ranked = [i for i, r in enumerate(rows) if r["mode"] == RANK]
    if ranked:
        scores = option_logprobs(model, tokenizer, [rows[i]["prompt"] for i in ranked],
                                 [rows[i]["options"] for i in ranked], max_length, batch_size)
        for i, s in zip(ranked, scores):
            preds[i] = rows[i]["options"][max(range(len(s)), key=s.__getitem__)]
    generated = [i for i, r in enumerate(rows) if r["mode"] == GENERATE]
    if generated:
        texts = greedy_generate(model, tokenizer, [rows[i]["prompt"] for i in generated],
                                max_new_tokens, max_length, batch_size)
        for i, text in zip(generated, texts):
            preds[i] = text
    return preds


# --- the test rows ------------------------------------------------------------------------

def eval_rows(splits: dict, refs: Sequence[TaskRef]) -> pl.DataFrame:
    """Every task's test rows from forward templates, with how each is scored (mode) and by what metric.

    Columns: example_id, task, cluster, metric, mode, prompt, target, options.
    """
    import tasks as suite

    frames = []
    for ref in refs:
        spec = suite.get_task(ref.name)
        inverted = {t.id for t in suite.templates.list_templates(ref.name) if t.inverted}
        test = splits[ref.name].test
        frame = pl.DataFrame({
            "example_id": list(test["example_id"]), "template_id": list(test["template_id"]),
            "prompt": list(test["prompt"]), "target": list(test["target"]),
            "options": pl.Series(list(test["options"]), dtype=pl.List(pl.String)),
        }).filter(~pl.col("template_id").is_in(list(inverted))).drop("template_id")
        if frame.is_empty():
            raise ValueError(f"evaluate: task {ref.name} has no forward-template rows in its test split; "
                             "raise tasks.test_size")
        rank = (pl.col("options").list.len() > 0) & pl.lit(spec.metric == "accuracy")
        frames.append(frame.with_columns(
            pl.lit(ref.name).alias("task"), pl.lit(ref.cluster).alias("cluster"), pl.lit(spec.metric).alias("metric"),
            pl.when(rank).then(pl.lit(RANK)).otherwise(pl.lit(GENERATE)).alias("mode")))
    return pl.concat(frames).select("example_id", "task", "cluster", "metric", "mode", "prompt", "target", "options")


def score_predictions(rows: pl.DataFrame, predictions: pl.DataFrame) -> pl.DataFrame:
    """eval.parquet from predictions (example_id, model, prediction) and the rows they answer."""
    joined = predictions.join(rows.select("example_id", "task", "cluster", "metric", "target"), on="example_id")
    records = []
    for (model, task, cluster, metric), group in joined.group_by("model", "task", "cluster", "metric"):
        group = group.sort("example_id")
        records.append({"model": model, "task": task, "cluster": cluster, "metric": metric,
                        "score": task_score(metric, group["prediction"].to_list(), group["target"].to_list()),
                        "n": group.height})
    # Models in the paper's order, tasks in the experiment's (registry, so cluster) order.
    models = {PRETRAINED: 0, MULTITASK: 1, CONTROL: 2}
    tasks = {task: i for i, task in enumerate(dict.fromkeys(rows["task"].to_list()))}
    return (pl.DataFrame(records, schema={"model": pl.String, "task": pl.String, "cluster": pl.String,
                                          "metric": pl.String, "score": pl.Float64, "n": pl.Int64})
            .sort(pl.col("model").replace_strict(models, default=3), pl.col("task").replace_strict(tasks, default=-1))
            .select(EVAL_COLUMNS))


# --- the Ray stage --------------------------------------------------------------------------

class TaskScorer:
    """Ray Data actor: test rows in, one prediction per (example, model) out."""

    def __init__(self, experiment: dict, model_dir: str, adapters: dict[str, str]):
        exp = ExperimentConfig.model_validate(experiment)
        device = pick_device(exp.model)
        if device == "cpu":
            torch.set_num_threads(max(1, int(round(exp.resources.cpus_per_worker))))
        self.models = AdaptedModel(model_dir, device, pick_dtype(exp.model, device, inference=True), adapters)
        self.options = {"max_new_tokens": exp.evaluation.max_new_tokens, "batch_size": exp.evaluation.batch_size,
                        "max_length": exp.training.max_length}

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        rows = batch.to_pylist()
        everyone = list(range(len(rows)))
        passes = [(PRETRAINED, None, everyone), (MULTITASK, MULTITASK, everyone)]
        for task in dict.fromkeys(r["task"] for r in rows):
            passes.append((CONTROL, f"{CONTROL}-{task}", [i for i, r in enumerate(rows) if r["task"] == task]))
        ids, labels, preds = [], [], []
        for label, adapter, picked in passes:
            with self.models.use(adapter):
                preds += predict(self.models.model, self.models.tokenizer, [rows[i] for i in picked], **self.options)
            ids += [rows[i]["example_id"] for i in picked]
            labels += [label] * len(picked)
        metrics.record_rows("evaluate", len(rows), time.time() - started)
        return pa.table({"example_id": pa.array(ids, pa.string()), "model": pa.array(labels, pa.string()),
                         "prediction": pa.array(preds, pa.string())})


def eval_path(plan: Plan) -> Path:
    return plan.out / "eval.parquet"


def run_evaluation(plan: Plan, model_dir: str, splits: dict) -> pl.DataFrame:
    """Write <out>/eval.parquet: model, task, cluster, metric, score, n (skipped when current)."""
    import ray
    from ray.data import ActorPoolStrategy

    from runner.harness import run_harness

    exp, marker = plan.config, plan.out / "evaluation"
    if eval_path(plan).exists() and is_done(marker, plan.evaluate_key):
        log.info("evaluate: eval.parquet is current, skipping")
        scores = pl.read_parquet(eval_path(plan))
    else:
        started = time.time()
        rows = eval_rows(splits, plan.tasks)
        log.info("evaluate: %d test rows of %d tasks through pretrained, multitask and %d controls on %d actor(s)",
                 rows.height, len(plan.tasks), len(plan.tasks), exp.resources.extract_actors)
        on_gpu = exp.resources.gpus_per_worker > 0
        predictions = ray.data.from_arrow(rows.to_arrow()).map_batches(
            TaskScorer,
            fn_constructor_kwargs={"experiment": exp.model_dump(mode="json"), "model_dir": model_dir,
                                   "adapters": {job.id: job.out_dir for job in plan.jobs}},
            # Small Ray Data batches keep every actor busy to the end (rows are sorted by task).
            batch_size=exp.evaluation.batch_size, batch_format="pyarrow",
            compute=ActorPoolStrategy(size=exp.resources.extract_actors),
            num_cpus=exp.resources.cpus_per_worker, num_gpus=exp.resources.gpus_per_worker if on_gpu else 0,
        ).to_arrow_refs()
        predictions = pl.from_arrow(pa.concat_tables(ray.get(predictions)))
        scores = score_predictions(rows, predictions)
        expected = len(plan.tasks) * 3
        if scores.height != expected:
            raise RuntimeError(f"evaluate: {scores.height} (model, task) scores, expected {expected}")
        atomic_write_parquet(predictions.join(rows.select("example_id", "task", "target"), on="example_id")
                             .sort("model", "task", "example_id"), plan.out / "eval_predictions.parquet")
        atomic_write_parquet(scores, eval_path(plan))
        mark_done(marker, plan.evaluate_key, seconds=round(time.time() - started, 2), rows=rows.height)
        log.info("evaluate: %d scores in %.1fs -> %s", scores.height, time.time() - started, eval_path(plan))
    if exp.evaluation.harness_tasks:
        run_harness(plan, model_dir)
    return scores
