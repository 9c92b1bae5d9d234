"""analysis.compare: activations in, the run's frames out, without Ray or a config; checked against
the measures themselves, a planted effect and the analyze stage's own per-task frames."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import analysis
import analysis.api
from analysis.claims.findings import COLUMNS as FINDINGS_COLUMNS
from analysis.claims.findings import VERDICTS
from analysis.measures import get_measure
from analysis.roles import CKA, CONTROL, GAPS, LAYER_MAP, MULTITASK, PRETRAINED, SEED_BASELINE, SIMILARITY, reseeded

LAYERS, N, D = 6, 40, 16
TASKS = {f"t{i}": ("a" if i < 3 else "b") for i in range(6)}


def _noise(rng, scale=1.0):
    return scale * rng.normal(size=(N, D))


def _planted(seed: int = 0, late: int = 3) -> dict:
    """E = C_t + small noise from layer `late` on (independent before); pretrained independent
    everywhere; the reseeded twin = C_t + small noise (a small floor)."""
    rng = np.random.default_rng(seed)
    reps = {PRETRAINED: {}, MULTITASK: {}, CONTROL: {}, reseeded(1): {}}
    for task in TASKS:
        control = np.stack([_noise(rng) for _ in range(LAYERS)])
        reps[CONTROL][task] = control
        reps[PRETRAINED][task] = np.stack([_noise(rng) for _ in range(LAYERS)])
        reps[MULTITASK][task] = np.stack([control[la] + _noise(rng, 0.05) if la >= late else _noise(rng)
                                          for la in range(LAYERS)])
        reps[reseeded(1)][task] = control + 0.05 * rng.normal(size=control.shape)
    return reps


@pytest.fixture(scope="module")
def planted():
    return _planted(), analysis.compare(_planted(), TASKS, measures=["linear_cka", "pca99"], draws=300)


def test_docstring_example_runs():
    assert doctest.testmod(analysis.api).failed == 0


def test_import_analysis_stays_cheap():
    # The package itself must not pull in the API's numpy/polars/torch stack until it is used.
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "analysis" or name.startswith("analysis.")}
    try:
        fresh = importlib.import_module("analysis")
        assert "analysis.api" not in sys.modules
        assert callable(fresh.compare) and "analysis.api" in sys.modules
    finally:
        for name in [n for n in sys.modules if n == "analysis" or n.startswith("analysis.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_the_api_needs_neither_ray_nor_the_runner():
    code = "import sys, analysis; analysis.compare; print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'runner'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_similarity_is_the_measure_on_the_same_arrays(planted):
    reps, result = planted
    rows = result.similarity.filter((pl.col("measure") == "linear_cka") & (pl.col("control") == CONTROL))
    cka = get_measure("linear_cka")
    for model in (PRETRAINED, MULTITASK, reseeded(1)):
        for task in ("t0", "t4"):
            got = rows.filter((pl.col("experimental") == model) & (pl.col("task") == task)).sort("layer")["value"]
            want = [cka(reps[model][task][la], reps[CONTROL][task][la]) for la in range(LAYERS)]
            np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-9, atol=1e-12)


def test_identical_multitask_and_control_give_cka_one():
    reps = _planted(seed=3)
    reps[MULTITASK] = {task: array.copy() for task, array in reps[CONTROL].items()}
    result = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    e = result.cka.filter(pl.col("experimental") == MULTITASK)
    assert e.height == len(TASKS) * LAYERS
    np.testing.assert_allclose(e[CKA].to_numpy(), 1.0, atol=1e-9)


def test_planted_late_effect_shows_as_positive_distinguishable_gaps(planted):
    _, result = planted
    gaps = result.gaps.filter((pl.col("measure") == "linear_cka") & (pl.col("group") == "seen")).sort("layer")
    late, early = gaps.filter(pl.col("layer") >= 3), gaps.filter(pl.col("layer") < 3)
    assert (late["delta"] > 0.3).all() and (late["ci_low"] > 0).all() and late["distinguishable"].all()
    assert (early["delta"].abs() < late["delta"].min() / 3).all()
    assert result.layer_map["structure"].unique().to_list() == ["above noise"]
    verdict = result.findings.filter((pl.col("measure") == "linear_cka")
                                     & (pl.col("claim") == "multitask_above_pretrained_upper"))["verdict"]
    assert verdict.to_list() == ["holds"]


def test_frames_have_the_run_schemas(planted):
    _, result = planted
    assert tuple(result.findings.columns) == (*FINDINGS_COLUMNS, "experimental", "scores")
    assert set(result.findings["verdict"].unique()) <= set(VERDICTS)
    assert result.gaps.columns[:3] == ["measure", "group", "layer"] and "distinguishable" in result.gaps.columns
    assert result.seed_baseline.columns == ["task", "cluster", "layer", CKA, "n", "seed_a", "seed_b", "measure"]
    assert result.seed_baseline.height == len(TASKS) * LAYERS
    frames = result.frames()
    assert {SIMILARITY, CKA, SEED_BASELINE, GAPS, LAYER_MAP, "findings", "layer_stats"} <= set(frames)
    assert "cross_layer" not in frames  # off unless asked


def test_similarity_matches_the_analyze_stage(tmp_path, monkeypatch):
    """The analyze stage's per-task frame, read from an activations folder, equals the API's."""
    from runner.config import AnalysisConfig
    from runner.ops import metrics
    from runner.stages import analyze

    reps = _planted(seed=5)
    task = "t1"
    ids = [f"{task}:probe:{i:03d}" for i in range(N)]
    rows = [{"task": task, "model": model, "layer": la, "example_id": ids[i], "vector": reps[model][task][la, i]}
            for model in reps for la in range(LAYERS) for i in range(N)]
    frame = pl.DataFrame(rows).with_columns(pl.col("vector").cast(pl.Array(pl.Float32, D)))
    frame.write_parquet(tmp_path / "part.parquet")
    monkeypatch.setattr(metrics, "record_pairs", lambda count: None)  # a Ray metric: no cluster here
    cfg = AnalysisConfig(measures=["linear_cka", "procrustes", "pca99"], cross_layer=True)
    runner = analyze.analyze_task(str(tmp_path), task, TASKS[task], cfg.model_dump(mode="json"))
    # The stage reads float32 vectors, so compare with the same precision.
    as_f32 = {m: {t: a.astype(np.float32) for t, a in per.items()} for m, per in reps.items()}
    api = analysis.compare(as_f32, TASKS, measures=["linear_cka", "procrustes", "pca99"], cross_layer=True, draws=100)
    for name in (SIMILARITY, "layer_stats", "cross_layer"):
        mine = getattr(api, name).filter(pl.col("task") == task)
        assert mine.schema == runner[name].schema, name
        keys = [c for c in mine.columns if c not in ("value",)]
        joined = mine.join(runner[name], on=keys, how="full", suffix="_runner")
        assert joined.height == mine.height == runner[name].height > 0, name
        np.testing.assert_allclose(joined["value"].to_numpy(), joined["value_runner"].to_numpy(), rtol=1e-6)



def test_rows_matched_by_id_and_non_finite_rows_dropped():
    reps = _planted(seed=7)
    order = np.random.default_rng(0).permutation(N)
    ids = [f"x{i:03d}" for i in range(N)]
    shuffled = {task: ([ids[i] for i in order], array[:, order]) for task, array in reps[CONTROL].items()}
    by_id = {m: {t: (ids, a) for t, a in per.items()} for m, per in reps.items() if m != CONTROL}
    by_id[CONTROL] = shuffled
    by_id[PRETRAINED]["t0"][1][2, 5, 0] = np.nan  # example 5 of t0 is dropped from every model
    plain = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    matched = analysis.compare(by_id, TASKS, measures=["linear_cka"], draws=100)
    keys = ["experimental", "control", "task", "layer"]
    both = plain.similarity.join(matched.similarity, on=keys, suffix="_id").filter(pl.col("task") != "t0")
    np.testing.assert_allclose(both["value"].to_numpy(), both["value_id"].to_numpy(), rtol=1e-9)
    t0 = matched.similarity.filter(pl.col("task") == "t0")
    assert set(t0["n"]) == {N - 1} and set(t0["n_dropped"]) == {1}


def test_a_list_of_per_layer_arrays_is_the_same_input():
    reps = _planted(seed=9)
    listed = {m: {t: list(a) for t, a in per.items()} for m, per in reps.items()}
    a = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100).similarity
    b = analysis.compare(listed, TASKS, measures=["linear_cka"], draws=100).similarity
    assert a.equals(b)


def test_a_published_model_is_compared_like_e_and_can_stand_alone():
    reps = _planted(seed=11)
    reps["other"] = {t: a + 0.01 for t, a in reps[CONTROL].items()}
    result = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    other = result.similarity.filter((pl.col("experimental") == "other") & (pl.col("control") == CONTROL))
    assert other.height == len(TASKS) * LAYERS
    assert set(result.cka["experimental"]) == {"pretrained", MULTITASK, "other"}
    assert set(result.findings["experimental"]) == set(result.gaps["experimental"]) == {MULTITASK, "other"}
    del reps[MULTITASK]  # no E trained: the published model is the only tuned one
    alone = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    assert set(alone.findings["experimental"]) == {"other"}


def test_covariates_feed_the_correlations_and_the_size_claim():
    reps = _planted(seed=13)
    tasks = {t: {"cluster": c, "train_size": 100 * (i + 1), "flesch_kincaid": float(i % 3)}
             for i, (t, c) in enumerate(TASKS.items())}
    result = analysis.compare(reps, tasks, measures=["linear_cka"], draws=100)
    assert result.correlations is not None and set(result.correlations["measure"]) == {"train_size", "flesch_kincaid"}
    size = result.findings.filter(pl.col("claim") == "no_data_size_correlation")
    assert "no variance" not in size["reason"][0]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r[CONTROL].pop("t2"), r"task 't2' has no \['control'\]"),
    (lambda r: r.pop(MULTITASK), r"reps has no tuned model"),
    (lambda r: r[MULTITASK].update(t0=r[MULTITASK]["t0"][:, :-1]), r"task 't0': models have different row counts"),
    (lambda r: r[PRETRAINED].update(t3=r[PRETRAINED]["t3"][:-1]), r"ragged layer counts"),
    (lambda r: r[PRETRAINED].update(t3=[r[PRETRAINED]["t3"][0], r[PRETRAINED]["t3"][1][:-1]]), r"per-layer arrays"),
    (lambda r: r[CONTROL].update(stray=r[CONTROL]["t0"]), r"tasks \['stray'\] that `tasks` lacks"),
    (lambda r: r[PRETRAINED].update(t0=r[PRETRAINED]["t0"][0]), r"expected an array \[layers, n, d\]"),
])
def test_bad_input_is_one_line_saying_what_to_fix(mutate, message):
    reps = _planted(seed=17)
    mutate(reps)
    with pytest.raises(ValueError, match=message) as info:
        analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    assert "\n" not in str(info.value)


def test_pretrained_kind_is_checked_and_named_in_the_reasons():
    with pytest.raises(ValueError, match="pretrained_kind 'chat'"):
        analysis.compare(_planted(), TASKS, measures=["linear_cka"], pretrained_kind="chat")
    result = analysis.compare(_planted(), TASKS, measures=["linear_cka"], draws=100, pretrained_name="m",
                              pretrained_kind="instruction_tuned")
    reason = result.findings.filter(pl.col("claim") == "multitask_above_pretrained_upper")["reason"][0]
    assert "(m) is already instruction-tuned" in reason


def test_unknown_measure_fails_before_any_work():
    with pytest.raises(KeyError, match="unknown measure 'linear_ckaa'"):
        analysis.compare(_planted(), TASKS, measures=["linear_ckaa"])


def test_with_calibration_the_gaps_and_findings_read_calibrated_scores():
    reps = _planted(seed=17)
    raw = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100)
    calibrated = analysis.compare(reps, TASKS, measures=["linear_cka"], draws=100, calibrate=19)
    assert set(raw.gaps["scores"]) == {"raw"} and set(calibrated.gaps["scores"]) == {"calibrated"}
    assert set(calibrated.findings["scores"]) == {"calibrated"}
    assert "calibrated" in calibrated.similarity.columns and "calibrated" not in raw.similarity.columns
    key = ["experimental", "group", "layer"]
    a, b = (g.filter(pl.col("measure") == "linear_cka").sort(key)["delta"] for g in (raw.gaps, calibrated.gaps))
    assert (a - b).abs().max() > 1e-6  # the calibrated gap is another number, not a relabelled one
