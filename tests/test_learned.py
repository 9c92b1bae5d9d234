"""Did each control learn its task? The learned-or-not rule (analysis.derived.learned) on hand-built predictions
with a known answer, E's aggregation, the optional validation-loss columns, and the notes the claims carry."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analysis.derived.learned import (
    COLUMNS,
    INCONCLUSIVE,
    NO,
    VERDICT_COLUMNS,
    YES,
    control_verdicts,
    learned_frame,
    learned_note,
    model_verdicts,
    unchecked,
    verdicts,
    with_verdicts,
)
from analysis.roles import CONTROL, MULTITASK, PRETRAINED, reseeded

N = 40  # test examples per task


def _task(task: str, hits: dict[str, int]) -> list[dict]:
    """N accuracy rows of `task`: model m gets its first hits[m] examples right, the rest wrong."""
    rows = []
    for model, right in hits.items():
        rows += [{"example_id": f"{task}:test:{i:03d}", "model": model, "prediction": "yes" if i < right else "no",
                  "task": task, "cluster": "c", "metric": "accuracy", "target": "yes"} for i in range(N)]
    return rows


def _predictions() -> pl.DataFrame:
    # learned: 20 -> 40 right; worse: 20 -> 10; same: 20 -> 21 (one example apart); all exact, by construction.
    rows = (_task("learned", {PRETRAINED: 20, MULTITASK: 40, CONTROL: 40, reseeded(1): 38})
            + _task("worse", {PRETRAINED: 20, MULTITASK: 40, CONTROL: 10})
            + _task("same", {PRETRAINED: 20, MULTITASK: 21, CONTROL: 21}))
    return pl.DataFrame(rows)


def _training(**val: list) -> pl.DataFrame:
    """training.parquet's shape: E on the three tasks, a control each, a twin, a control never scored, a published
    model. `val`: optional validation-loss columns, one value per row."""
    frame = pl.DataFrame({
        "model": ["multitask", "control-learned", "control-worse", "control-same", "control-learned-seed1",
                  "control-unscored", "chat"],
        "label": [MULTITASK, CONTROL, CONTROL, CONTROL, reseeded(1), CONTROL, "chat"],
        "role": [MULTITASK, CONTROL, CONTROL, CONTROL, CONTROL, CONTROL, "published"],
        "tasks": ["learned,worse,same", "learned", "worse", "same", "learned", "unscored", None],
        "seed": [0, 0, 0, 0, 1, 0, None],
        "best_val_loss": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, None],
        "trained": [True] * 6 + [False],
    })
    return frame.with_columns(pl.Series(name, values, dtype=pl.Float64) for name, values in val.items())


@pytest.fixture(scope="module")
def by_score() -> pl.DataFrame:
    return learned_frame(_predictions(), _training(), n_boot=500)


def _row(frame: pl.DataFrame, model: str, task: str) -> dict:
    return frame.filter((pl.col("model") == model) & (pl.col("task") == task)).row(0, named=True)


def test_one_row_per_trained_model_and_task_it_was_trained_on(by_score):
    assert by_score.columns == list(COLUMNS)
    assert sorted(by_score.select("model", "task").iter_rows()) == sorted([
        ("multitask", "learned"), ("multitask", "worse"), ("multitask", "same"), ("control-learned", "learned"),
        ("control-worse", "worse"), ("control-same", "same"), ("control-learned-seed1", "learned"),
        ("control-unscored", "unscored")])  # the published model is not judged: it was not trained here


def test_the_score_gain_is_against_the_pretrained_model_on_the_same_examples(by_score):
    row = _row(by_score, "control-learned", "learned")
    assert (row["n"], row["metric"], row["score"], row["pretrained_score"], row["gain"]) == (N, "accuracy", 100, 50, 50)
    assert 0 < row["gain_ci_low"] <= row["gain"] <= row["gain_ci_high"]
    assert _row(by_score, "control-learned-seed1", "learned")["score"] == 95  # the twin judged on its own predictions


def test_without_validation_losses_the_score_alone_decides(by_score):
    assert _row(by_score, "control-learned", "learned")["learned"] == YES
    assert "score alone decides" in _row(by_score, "control-learned", "learned")["reason"]
    worse = _row(by_score, "control-worse", "worse")
    assert (worse["learned"], worse["gain_ci_high"] <= 0) == (NO, True) and "at or below 0" in worse["reason"]
    same = _row(by_score, "control-same", "same")
    assert same["learned"] == INCONCLUSIVE and same["gain_ci_low"] <= 0 < same["gain_ci_high"]
    assert "too few test examples" in same["reason"]
    assert by_score["pretrained_val_loss"].is_null().all() and by_score["val_gain_se"].is_null().all()


def test_a_model_with_no_predictions_for_its_task_is_inconclusive(by_score):
    row = _row(by_score, "control-unscored", "unscored")
    assert (row["learned"], row["n"], row["score"]) == (INCONCLUSIVE, 0, None)
    assert "no test predictions for unscored" in row["reason"]
    # No predictions at all (evaluation disabled): every model inconclusive, nothing fails.
    empty = learned_frame(_predictions().clear(), _training(), n_boot=50)
    assert set(empty["learned"]) == {INCONCLUSIVE}


def test_an_identical_model_did_not_learn():
    # A control that predicts exactly what the pretrained model does: gain 0, CI [0, 0].
    predictions = pl.DataFrame(_task("learned", {PRETRAINED: 20, CONTROL: 20}))
    training = _training().filter(pl.col("model") == "control-learned")
    row = learned_frame(predictions, training, n_boot=100).row(0, named=True)
    assert (row["gain"], row["gain_ci_high"], row["learned"]) == (0, 0, NO)


@pytest.mark.parametrize("pretrained, se, expected, why", [
    (2.5, 0.1, YES, "down more than 2 SE"),         # fell 0.5 > 2 x 0.1
    (2.1, 0.1, INCONCLUSIVE, "within 2 SE"),        # fell 0.1 <= 2 x 0.1: the score rose, the loss within noise
    (1.9, 0.1, NO, "did not fall below"),           # rose: did not learn whatever the score says
])
def test_the_validation_loss_must_fall_beyond_its_noise(by_score, pretrained, se, expected, why):
    training = _training(pretrained_val_loss=[pretrained] * 6 + [None], val_gain_se=[se] * 6 + [None])
    judged = verdicts(by_score, training)  # the scored gains reused: only the verdicts are redone
    row = _row(judged, "control-learned", "learned")
    assert (row["pretrained_val_loss"], row["val_gain_se"], row["learned"]) == (pretrained, se, expected)
    assert why in row["reason"] and "score alone" not in row["reason"]
    # A score at or below the pretrained model's is "no" whatever the loss did.
    assert _row(judged, "control-worse", "worse")["learned"] == NO


def test_a_row_with_an_unknown_standard_error_falls_back_to_the_score():
    training = _training(pretrained_val_loss=[2.5] * 6 + [None], val_gain_se=[None, 0.1, 0.1, 0.1, 0.1, 0.1, None])
    judged = learned_frame(_predictions(), training, n_boot=200)
    assert "score alone decides" in _row(judged, "multitask", "learned")["reason"]
    assert "down more than 2 SE" in _row(judged, "control-learned", "learned")["reason"]


def test_e_learned_only_when_it_learned_every_seen_task(by_score):
    summary = dict(model_verdicts(by_score, _training()).select("model", "learned").iter_rows())
    assert summary == {"multitask": INCONCLUSIVE, "control-learned": YES, "control-worse": NO, "control-same": INCONCLUSIVE,
                       "control-learned-seed1": YES, "control-unscored": INCONCLUSIVE}
    # E's tasks: yes on "learned" and "worse" (it beat the pretrained model on both), inconclusive on "same".
    e = by_score.filter(pl.col("model") == "multitask")
    assert dict(e.select("task", "learned").iter_rows()) == {"learned": YES, "worse": YES, "same": INCONCLUSIVE}
    only_yes = by_score.filter((pl.col("model") != "multitask") | (pl.col("task") != "same"))
    e_rows = model_verdicts(only_yes, _training()).filter(pl.col("model") == "multitask").row(0, named=True)
    assert e_rows["learned"] == YES and e_rows["score"] is None  # E's score columns: null (several tasks)


def test_e_did_not_learn_when_it_did_not_learn_one_task():
    predictions = pl.DataFrame(_task("learned", {PRETRAINED: 20, MULTITASK: 40}) + _task("worse", {PRETRAINED: 20,
                                                                                                   MULTITASK: 5}))
    training = _training().filter(pl.col("model") == "multitask").with_columns(pl.lit("learned,worse").alias("tasks"))
    row = model_verdicts(learned_frame(predictions, training, n_boot=200), training).row(0, named=True)
    assert row["learned"] == NO and row["learned_reason"] == "did not learn worse"


def test_training_gains_the_verdict_columns_once(by_score):
    training = with_verdicts(_training(), by_score)
    assert training.columns == [*_training().columns, *VERDICT_COLUMNS]
    trained = training.filter(pl.col("trained"))
    assert set(trained["learned"]) <= {YES, NO, INCONCLUSIVE} and trained["learned"].null_count() == 0
    assert training.filter(~pl.col("trained"))["learned"].is_null().all()  # the published model: not judged
    control = training.filter(pl.col("model") == "control-learned").row(0, named=True)
    assert (control["score"], control["pretrained_score"], control["gain"]) == (100, 50, 50)
    assert training["model"].to_list() == _training()["model"].to_list()
    # Joined again (the evaluate stage on every run): the earlier columns are replaced, not doubled.
    assert with_verdicts(training, by_score).equals(training)


def test_the_claims_notes_name_the_controls_that_did_not_learn(by_score):
    verdicts_by_task = control_verdicts(by_score)
    assert verdicts_by_task == {"learned": YES, "worse": NO, "same": INCONCLUSIVE, "unscored": INCONCLUSIVE}
    assert learned_note(verdicts_by_task, ["learned"]) == ""
    assert learned_note(verdicts_by_task, ["learned", "worse", "same", "other"]) == (
        "; rests on 1 control that did not learn its task: worse; and on 1 control whose learning is inconclusive: "
        "same; and on 1 control whose learning was not checked: other")
    assert learned_note(control_verdicts(unchecked()), ["learned"]).startswith("; the controls' learning was not checked")
    assert learned_note(None, ["worse"]) == ""  # not tracked (analysis.api): no note


@pytest.fixture(scope="module")
def similarity() -> pl.DataFrame:
    from tests.test_findings import synthetic_similarity

    return synthetic_similarity(np.zeros(21), seen=5, unseen=2)


def _learned_for(tasks: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame([{"model": f"control-{t}", "label": CONTROL, "role": CONTROL, "task": t, "learned": v}
                         for t, v in tasks.items()])


def test_every_claim_reading_the_controls_says_what_it_rests_on(similarity):
    from analysis.derive import DeriveOptions, derive_frames
    from tests.test_findings import MEASURE

    opts = DeriveOptions(primary=MEASURE, measures=[MEASURE], dimensionality=None, draws=200)
    learned = _learned_for({"seen0": NO, "seen1": YES, "seen2": INCONCLUSIVE, "seen3": YES, "seen4": YES,
                            "new0": YES, "new1": NO})
    findings = derive_frames(similarity, None, None, opts, learned=learned)["findings"]
    plain = derive_frames(similarity, None, None, opts)["findings"]
    assert findings["verdict"].to_list() == plain["verdict"].to_list()  # the note never changes a verdict
    unseen = pl.col("claim").str.starts_with("unseen_")
    seen_note = ("; rests on 1 control that did not learn its task: seen0; and on 1 control whose learning is "
                 "inconclusive: seen2")
    for row, before in zip(findings.iter_rows(named=True), plain.iter_rows(named=True)):
        note = "; rests on 1 control that did not learn its task: new1" if row["claim"].startswith("unseen_") \
            else seen_note
        assert note in row["reason"] and row["reason"].replace(note, "") == before["reason"], row["claim"]
    assert findings.filter(unseen).height == 2
    # Evaluation disabled: the claims say the controls' learning was not checked.
    none = derive_frames(similarity, None, None, opts, learned=unchecked())["findings"]
    assert none["reason"].str.contains("the controls' learning was not checked").all()


def test_the_report_counts_the_controls_that_learned(by_score):
    import html as markup

    from analysis.report import inputs_section, learned_paragraphs

    html = markup.unescape("".join(learned_paragraphs({"learned": by_score, "training": _training().with_columns(
        pl.lit(4).alias("steps"))})))
    assert ("1 of 4 controls learned their task (held-out score above the pretrained model's, paired 95% CI; the "
            "pretrained model's validation loss is not recorded, so the score alone decides): 1 did not (worse), "
            "2 inconclusive (same, unscored).") in html
    assert "E learned 2 of its 3 seen tasks by the same rule; inconclusive on same." in html
    assert html.count("<tr") == 1 + 5  # the header, four controls and the twin
    assert "100 vs 50: +50 [+" in html
    assert "not checked" in "".join(inputs_section({}))
