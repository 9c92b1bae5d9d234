"""The evaluate stage: metric functions, scoring with one model, the tiny run's eval.parquet."""

from __future__ import annotations

import logging
import math
import time

import polars as pl
import pytest
import torch

from analysis.frames.scores import (
    EVAL_COLUMNS,
    accuracy,
    bleu,
    gap_column,
    gap_frame,
    paired_gap,
    rouge_l,
    score_cka_frame,
    score_frame,
    score_with_ci,
    task_score,
)
from runner.config import load_config, preset_path
from tests.helpers_test_only import comparison_table

# --- analysis/frames/scores.py against known values -------------------------------------------------


def test_accuracy_normalises_case_space_and_final_punctuation():
    assert accuracy(["Yes", " no.", "maybe"], ["yes", "no", "no"]) == pytest.approx(200 / 3)
    assert accuracy(["a  b"], ["A b!"]) == 100.0


def test_rouge_l_is_lcs_f_measure():
    # LCS of "the cat sat on the mat" / "the cat sat on a mat" is 5 tokens of 6 each: F = 5/6.
    assert rouge_l(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(500 / 6)
    # Mean over examples; stemming makes "cats" match "cat".
    assert rouge_l(["cats", "dog"], ["cat", "bird"]) == pytest.approx(50.0)


def test_bleu_is_sacrebleu_corpus_bleu():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["x y z w"], ["a b c d"]) == pytest.approx(0.0)
    # 1- to 4-gram precisions 4/5, 3/4, 2/3, 1/2, no brevity penalty: geometric mean = 0.2 ** 0.25.
    assert bleu(["a b c d e"], ["a b c d f"]) == pytest.approx(100 * 0.2 ** 0.25, abs=1e-3)


def test_task_score_dispatches_and_rejects_bad_input():
    assert task_score("accuracy", ["a"], ["a"]) == 100.0
    assert task_score("bleu", ["a b c d"], ["a b c d"]) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="unknown metric"):
        task_score("f1", ["a"], ["a"])
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        accuracy(["a", "b"], ["a"])


def _scores() -> pl.DataFrame:
    rows = [("pretrained", "rte", "nli", "accuracy", 50.0, 10), ("multitask", "rte", "nli", "accuracy", 70.0, 10),
            ("control", "rte", "nli", "accuracy", 80.0, 10), ("pretrained", "wmt", "translation", "bleu", 1.0, 12),
            ("multitask", "wmt", "translation", "bleu", 9.0, 12), ("control", "wmt", "translation", "bleu", 4.0, 12)]
    rows = [(m, t, c, metric, score, score - 5, score + 5, n) for m, t, c, metric, score, n in rows]
    return pl.DataFrame(rows, schema=list(EVAL_COLUMNS), orient="row")


def test_score_interval_is_a_bootstrap_over_examples():
    refs = ["yes", "no"] * 20
    preds = ["yes"] * 40  # half right
    score, lo, hi = score_with_ci("accuracy", preds, refs, n_boot=2000, seed=0)
    assert score == 50.0
    half_width = 1.96 * 100 * (0.25 / 40) ** 0.5  # the binomial standard error at p = 0.5, n = 40
    assert lo < 50 < hi and abs((hi - lo) / 2 - half_width) < 3.0
    assert score_with_ci("accuracy", preds, refs, n_boot=2000, seed=0) == (score, lo, hi)  # reproducible
    _, lo4, hi4 = score_with_ci("accuracy", preds * 4, refs * 4, n_boot=2000, seed=0)
    assert (hi4 - lo4) == pytest.approx((hi - lo) / 2, abs=3.0)  # four times the examples: half the width


def test_a_bleu_resample_is_the_corpus_bleu_of_the_resampled_sentences():
    """The bootstrap sums each sentence's n-gram statistics once tokenised: the same number as
    sacrebleu.corpus_bleu on the resampled lists, resample by resample."""
    import numpy as np

    from analysis.frames.scores import _resampled

    rng = np.random.default_rng(7)
    words = "das Haus ist groß the house is big , . a small red cat".split()
    refs = [" ".join(rng.choice(words, rng.integers(2, 12))) for _ in range(30)]
    preds = [r if i % 3 == 0 else "" if i % 7 == 0 else " ".join(rng.choice(words, rng.integers(1, 10)))
             for i, r in enumerate(refs)]
    idx = rng.integers(0, len(refs), size=(25, len(refs)))
    expected = [bleu([preds[i] for i in rows], [refs[i] for i in rows]) for rows in idx]
    assert _resampled("bleu", preds, refs, idx).tolist() == expected


def test_paired_gap_sees_a_consistent_difference_that_unpaired_intervals_would_miss():
    refs = [f"answer {i}" for i in range(60)]
    better = [r if i % 4 else "wrong" for i, r in enumerate(refs)]  # 15 of 60 wrong
    worse = [r if i % 4 and i % 7 else "wrong" for i, r in enumerate(refs)]  # those 15 and 6 more
    gap, lo, hi = paired_gap("accuracy", better, worse, refs, n_boot=2000, seed=0)
    assert gap == pytest.approx(10.0) and lo > 0 and lo <= gap <= hi  # never negative on a resample
    unpaired = [score_with_ci("accuracy", p, refs, n_boot=2000, seed=0) for p in (better, worse)]
    assert unpaired[0][1] < unpaired[1][2]  # yet the two scores' own intervals overlap
    same, lo, hi = paired_gap("accuracy", worse, worse, refs)
    assert same == 0 and lo == hi == 0


def test_gap_frame_calls_a_difference_only_when_its_interval_excludes_zero():
    rows = []
    for task, control_wrong in (("clear", range(0, 30, 2)), ("unclear", (3,))):
        for i in range(30):
            target = f"t{i}"
            rows += [("multitask", task, target, target), ("control", task, "x" if i in control_wrong else target, target)]
    predictions = pl.DataFrame(rows, schema=["model", "task", "prediction", "target"], orient="row").with_columns(
        pl.lit("c").alias("cluster"), pl.lit("accuracy").alias("metric"),
        (pl.col("task") + pl.col("target")).alias("example_id"))
    verdicts = dict(gap_frame(predictions).select("task", "verdict").iter_rows())
    assert verdicts == {"clear": "multitask better", "unclear": "no difference"}


def test_the_gap_column_is_named_for_the_tuned_model_and_the_old_name_still_reads():
    """eval_gaps holds E's and each published model's gap over C_t: `tuned_minus_control`, with the former
    name `multitask_minus_control` written as a copy and read from a frame written before the rename."""
    from analysis.report import eval_section
    from analysis.roles import OLD_TUNED_MINUS_CONTROL, TUNED_MINUS_CONTROL

    rows = []
    for i in range(20):
        for model, right in (("multitask", True), ("published-x", i % 2 == 0), ("control", i % 4 == 0)):
            rows.append((model, f"rte-{i}", "yes" if right else "no", "yes"))
    predictions = pl.DataFrame(rows, schema=["model", "example_id", "prediction", "target"], orient="row").with_columns(
        pl.lit("rte").alias("task"), pl.lit("nli").alias("cluster"), pl.lit("accuracy").alias("metric"))
    gaps = gap_frame(predictions, tuned=("multitask", "published-x"))
    assert gaps["experimental"].to_list() == ["multitask", "published-x"]
    assert gaps[TUNED_MINUS_CONTROL].to_list() == pytest.approx([75.0, 25.0])
    assert gaps[OLD_TUNED_MINUS_CONTROL].to_list() == gaps[TUNED_MINUS_CONTROL].to_list()
    assert gap_column(gaps) == TUNED_MINUS_CONTROL
    old = gaps.drop(TUNED_MINUS_CONTROL)  # eval_gaps as a run before the rename wrote it
    assert gap_column(old) == OLD_TUNED_MINUS_CONTROL
    scores = score_frame(predictions, n_boot=50)
    new_html, old_html = ("".join(eval_section({"eval": scores, "eval_gaps": frame})) for frame in (gaps, old))
    assert "+75.0 [" in new_html and new_html == old_html


def test_comparison_table_has_the_papers_layout():
    table = comparison_table(_scores())
    assert table.columns == ["cluster", "task", "metric", "n", "pretrained", "multitask", "control",
                             "multitask_minus_control"]
    assert table["task"].to_list() == ["rte", "wmt"]  # cluster order as given
    assert table["multitask_minus_control"].to_list() == pytest.approx([-10.0, 5.0])


def test_score_cka_frame_averages_cka_over_the_given_layers():
    cka = pl.DataFrame({"experimental": ["multitask"] * 3 + ["pretrained"] * 3, "task": ["rte"] * 6,
                        "layer": [0, 1, 2] * 2, "cka": [0.1, 0.5, 0.7, 0.2, 0.4, 0.9]})
    frame = score_cka_frame(_scores(), cka, layers=[1, 2])
    assert frame.height == 2  # wmt has no CKA rows; control is not an experimental model
    mt = frame.filter(pl.col("experimental") == "multitask").row(0, named=True)
    assert mt["cka"] == pytest.approx(0.6) and mt["score_minus_control"] == pytest.approx(-10.0)


# --- scoring with one model -----------------------------------------------------------------

KEYS = {"red": "A", "blue": "B", "green": "C", "yellow": "D"}  # one token each in the tiny vocabulary
NOUNS = ["box", "car", "hat", "cup", "door", "kite", "lamp", "shoe", "ball", "book", "fish", "tree"]


def _toy_rows(mode: str, start: int, count: int) -> list[dict]:
    """A task a random tiny Llama learns in a few dozen steps: the colour word names the label."""
    options = list(KEYS.values())
    rows = []
    for i in range(start, start + count):
        colour = list(KEYS)[i % 4]
        prompt = f"The {NOUNS[(i // 4) % len(NOUNS)]} is {colour}. Code?"
        if mode == "rank":
            prompt += "\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in options)
        rows.append({"example_id": f"toy:{i}", "prompt": prompt, "target": KEYS[colour], "mode": mode,
                     "options": options if mode == "rank" else []})
    return rows


@pytest.fixture(scope="module")
def tiny_model_dir():
    from runner.models import resolve_model

    # One thread: on a shared 2-core machine, oversubscribed intra-op threads make tiny
    # matmuls ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield resolve_model(load_config(preset_path("tiny")).model)
    torch.set_num_threads(threads)


def test_batched_scoring_matches_one_row_at_a_time(tiny_model_dir):
    from runner.inference.scoring import greedy_generate, option_logprobs
    from runner.models import AdaptedModel

    m = AdaptedModel(tiny_model_dir, "cpu", torch.float32, {})
    rows = _toy_rows("rank", 0, 5) + [{"prompt": "Premise: a long sentence about a man and a guitar. Yes or no?",
                                       "options": ["yes", "no", "it is not possible to tell"]}]
    prompts, options = [r["prompt"] for r in rows], [r["options"] for r in rows]
    batched = option_logprobs(m.model, m.tokenizer, prompts, options, max_length=64, batch_size=16)
    for row, (p, o) in enumerate(zip(prompts, options)):
        single = option_logprobs(m.model, m.tokenizer, [p], [o], max_length=64, batch_size=1)[0]
        assert single == pytest.approx(batched[row], abs=1e-3)  # padding changes nothing
        assert len(batched[row]) == len(o) and all(math.isfinite(v) and v < 0 for v in batched[row])
    # A prompt's cache shared by its options gives what one sequence per option gives.
    from runner.inference.scoring import _pair_scores, _split
    from runner.training.batching import encode_example

    encoded = [[_split(encode_example(m.tokenizer, p, o, 64)) for o in opts] for p, opts in zip(prompts, options)]
    per_pair = [[0.0] * len(o) for o in options]
    _pair_scores(m.model, encoded, list(range(len(prompts))), 16, m.tokenizer.pad_token_id, per_pair)
    for shared_row, pair_row in zip(batched, per_pair):
        assert shared_row == pytest.approx(pair_row, abs=1e-4)
    texts = greedy_generate(m.model, m.tokenizer, prompts, max_new_tokens=6, max_length=64, batch_size=16)
    assert texts == [greedy_generate(m.model, m.tokenizer, [p], 6, 64, 1)[0] for p in prompts]


def test_a_model_trained_on_a_task_beats_the_pretrained_model(tiny_model_dir, tmp_path):
    """LoRA-tune the tiny random Llama in-process on a learnable task, then score both models
    with the stage's own scoring code (adapter swapped in place, as in the actors)."""
    from peft import LoraConfig, get_peft_model

    from runner.inference.scoring import predict
    from runner.models import AdaptedModel, load_base_model, load_tokenizer
    from runner.training.batching import collate_training, encode_example

    started = time.time()
    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(0)
    # lm_head too: the random model's tied embeddings are so small that, behind the final RMSNorm,
    # no adapter on the blocks alone can make its logits confident.
    model = get_peft_model(load_base_model(tiny_model_dir, "cpu", torch.float32), LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]))
    train = _toy_rows("rank", 0, 48) + _toy_rows("generate", 0, 48)
    encoded = [encode_example(tokenizer, r["prompt"], r["target"], 64) for r in train]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        picked = torch.randperm(len(encoded), generator=generator)[:16].tolist()
        loss = model(**collate_training([encoded[i] for i in picked], tokenizer.pad_token_id)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path / "tuned")

    scorer = AdaptedModel(tiny_model_dir, "cpu", torch.float32, {"tuned": str(tmp_path / "tuned")})
    test = {"rank": _toy_rows("rank", 1000, 32), "generate": _toy_rows("generate", 1000, 32)}
    results = {}
    for name, rows in test.items():
        for adapter in (None, "tuned"):
            with scorer.use(adapter):
                preds = predict(scorer.model, scorer.tokenizer, rows, max_new_tokens=4, max_length=64, batch_size=16)
            results[name, adapter] = accuracy(preds, [r["target"] for r in rows])
    print(results, f"{time.time() - started:.1f}s")
    for name in test:
        assert results[name, "tuned"] >= 90.0, results
        assert results[name, "tuned"] >= results[name, None] + 40.0, results


# --- the stage in the tiny run ---------------------------------------------------------------


def test_tiny_run_scores_every_model_on_every_task(tiny_run):
    import tasks as suite

    config = load_config(preset_path("tiny"))
    chosen = [spec.name for spec in suite.resolve_tasks(config.tasks.select)]
    scores = pl.read_parquet(tiny_run / "eval.parquet")
    assert scores.columns == list(EVAL_COLUMNS)
    training = pl.read_parquet(tiny_run / "training.parquet")
    twins = training.filter(pl.col("seed") != config.training.seed).select("label", "tasks").iter_rows()
    assert sorted(scores.select("model", "task").iter_rows()) == sorted(
        [(model, task) for model in ("pretrained", "multitask", "control") for task in chosen] + list(twins))
    assert scores["score"].is_finite().all() and scores["score"].is_between(0, 100).all()
    assert (scores["n"] > 0).all() and (scores["n"] <= config.tasks.test_size).all()
    for task, metric in scores.select("task", "metric").unique().iter_rows():
        assert metric == suite.get_task(task).metric
    predictions = pl.read_parquet(tiny_run / "eval_predictions.parquet")
    assert predictions.height == scores["n"].sum()
    # Scored on the test split, never on the probe set.
    assert predictions["example_id"].str.contains(":test:").all()


def test_every_trained_model_is_judged_on_every_task_it_was_trained_on(tiny_run):
    from analysis.derived.learned import COLUMNS, LEARNED_VERDICTS

    learned = pl.read_parquet(tiny_run / "learned.parquet")
    assert learned.columns == list(COLUMNS)
    training = pl.read_parquet(tiny_run / "training.parquet")
    expected = {(r["model"], task) for r in training.iter_rows(named=True) for task in r["tasks"].split(",")}
    assert set(learned.select("model", "task").iter_rows()) == expected and learned.height == len(expected)
    assert set(learned["learned"]) <= set(LEARNED_VERDICTS) and (learned["n"] > 0).all()  # twins scored too
    assert learned["gain"].is_finite().all() and (learned["gain_ci_low"] <= learned["gain_ci_high"]).all()
    assert set(training["learned"]) <= set(LEARNED_VERDICTS) and training["learned"].null_count() == 0
    controls = training.filter(pl.col("role") == "control")
    assert controls["score"].is_not_null().all() and training.filter(pl.col("role") == "multitask")["score"].is_null().all()
    html = (tiny_run / "report.html").read_text()
    counted = learned.filter(pl.col("label") == "control")
    assert f"{(counted['learned'] == 'yes').sum()} of {counted.height} controls learned their task" in html
    assert html.index("controls learned their task") < html.index("id='findings'")  # the first section says it
    findings = pl.read_parquet(tiny_run / "findings.parquet")
    if (counted["learned"] != "yes").any():  # a random-init model's controls rarely learn: the claims say so
        assert findings["reason"].str.contains("rests on").any()


def test_report_has_the_tables_3_4_analogue(tiny_run):
    html = (tiny_run / "report.html").read_text()
    assert "Tables 3 and 4 analogue" in html and "E - C_t" in html and "[95% CI]" in html
    layer_map = pl.read_parquet(tiny_run / "layer_map.parquet")
    if (layer_map["function"] == "transition").any():
        assert (tiny_run / "figures" / "score_vs_cka_transition.png").exists()


def test_evaluate_skips_when_current_and_recomputes_nothing(tiny_run):
    from runner.experiment import prepare
    from runner.stages import evaluate

    exp = prepare(load_config(preset_path("tiny")), tiny_run)
    before = {name: (tiny_run / name).stat().st_mtime_ns for name in ("eval.parquet", "learned.parquet")}
    training = pl.read_parquet(tiny_run / "training.parquet")
    # The train stage rewrites training.parquet without the verdicts on every `layerwise run`.
    plain = training.drop("learned", "learned_reason", "score", "pretrained_score", "gain", "gain_ci_low",
                          "gain_ci_high")
    plain.write_parquet(tiny_run / "training.parquet")
    # A bogus model folder and no Ray prove no model is loaded and no actor started.
    exp._model_dir = "/nonexistent-model"
    assert evaluate.current(exp)
    evaluate.run(exp)
    assert {name: (tiny_run / name).stat().st_mtime_ns for name in before} == before  # the verdicts did not change
    assert pl.read_parquet(tiny_run / "training.parquet").equals(training)  # and are joined in again


def test_harness_is_skipped_offline_with_one_line(monkeypatch, caplog, tmp_path):
    from runner.data import select_tasks
    from runner.inference.lm_eval import parse_harness_tasks, run_harness
    from runner.plan import make_plan

    assert parse_harness_tasks(["mmlu", "bbh", "arc_easy:5"]) == [("mmlu", 0), ("bbh", 3), ("arc_easy", 5)]
    with pytest.raises(ValueError, match="task:shots"):
        parse_harness_tasks(["bbh:three"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = load_config(preset_path("tiny"), {"evaluation.harness_tasks": ["mmlu", "bbh"]})
    plan = make_plan(config, tmp_path, select_tasks(config))
    with caplog.at_level(logging.WARNING, logger="layerwise.evaluate"):
        assert run_harness(plan, "/nonexistent-model") is None
    (record,) = caplog.records
    assert "mmlu, bbh" in record.getMessage() and "skipped" in record.getMessage()
    assert not (tmp_path / "harness.parquet").exists()


def test_generation_never_copies_the_lm_head_once_per_row(tiny_model_dir):
    # With frozen weights, a strided last-position slice made torch's matmul expand the head to
    # (rows, d, vocab) and copy it: for Gemma's 262k vocabulary, 20 s per prefill in bf16.
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile

    from runner.inference.scoring import greedy_generate
    from runner.models import AdaptedModel

    m = AdaptedModel(tiny_model_dir, "cpu", torch.bfloat16, {})
    model = get_peft_model(m.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    prompts = [r["prompt"] for r in _toy_rows("generate", 0, 6)]
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        greedy_generate(model, m.tokenizer, prompts, max_new_tokens=3, max_length=64, batch_size=16)
    vocab = model.get_output_embeddings().weight.shape[0]
    batched_heads = [e for e in prof.key_averages(group_by_input_shape=True)
                     if e.key == "aten::bmm" and any(vocab in shape for shape in e.input_shapes)]
    assert not batched_heads, batched_heads[0].input_shapes
