"""Chance calibration (analysis.frames.calibration): scores against a permutation null, comparable across widths.

A calibrated score is 0 on average for unrelated data whatever its raw value, p-values are valid under
the null, a planted signal is found, the frames carry the same numbers as analysis.calibrate, and a
permutation indexes the cached Grams instead of recomputing them.
"""

import numpy as np
import polars as pl
import pytest

import analysis
import analysis.measures.cka as cka_measures
import analysis.measures.view as view_module
from analysis.frames.calibration import adjusted, calibrate
from analysis.frames.suite import pairwise_frame
from analysis.frames.task_frames import task_frames
from analysis.measures import Measure, View, get_measure
from runner.config import ConfigError, parse_config

NULL_COLUMNS = ["null_mean", "null_q95", "p_value", "n_permutations", "calibrated"]
CHEAP = ["linear_cka", "debiased_cka", "mutual_knn", "procrustes", "rsa"]


def gaussian_pairs(seed: int, count: int, n: int = 32, d: int = 512):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, d)), rng.standard_normal((n, d))) for _ in range(count)]


def test_public_entry_point_is_lazy_and_returns_the_four_numbers():
    assert analysis.calibrate is calibrate
    x, y = gaussian_pairs(0, 1)[0]
    out = analysis.calibrate("linear_cka", x, y, permutations=19, seed=1)
    assert {"score", "null_mean", "p_value", "calibrated"} <= set(out)
    assert out == calibrate(get_measure("linear_cka"), x, y, permutations=19, seed=1)  # a name or the Measure
    assert out != calibrate("linear_cka", x, y, permutations=19, seed=2)
    assert out["score"] == pytest.approx(get_measure("linear_cka")(x, y), abs=1e-12)
    assert out["calibrated"] == pytest.approx((out["score"] - out["null_mean"]) / (1 - out["null_mean"]))


def test_independent_gaussians_calibrate_to_zero_and_pvalues_are_valid():
    """Linear CKA of independent n=32, d=512 Gaussians is 0.94 raw; calibrated it is 0 on average, and
    p < 0.05 happens no more often than chance (<= 12 of 100: binomial(100, 0.05) exceeds 12 w.p. 0.002)."""
    outs = [calibrate("linear_cka", x, y, permutations=99, seed=i) for i, (x, y) in enumerate(gaussian_pairs(1, 100))]
    raw = np.array([o["score"] for o in outs])
    cal = np.array([o["calibrated"] for o in outs])
    p = np.array([o["p_value"] for o in outs])
    assert raw.min() > 0.9  # why calibration matters: "very similar" raw scores for unrelated data
    assert abs(cal.mean()) < 0.05 and abs(np.median(cal)) < 0.05
    # One draw's spread: sd(null) / (1 - m0) with 1 - m0 ~ 0.06 of headroom (about 0.045 here)
    assert cal.std() < 0.1
    assert (p < 0.05).sum() <= 12
    assert 0.3 < p.mean() < 0.7  # about uniform, not all 1 (a test that could never reject)


def test_calibrated_scores_are_comparable_across_widths():
    """Raw linear CKA of unrelated data depends on d (640-d vs 64-d); the calibrated score does not."""
    wide = [calibrate("linear_cka", x, y, permutations=49, seed=0) for x, y in gaussian_pairs(2, 20, d=640)]
    narrow = [calibrate("linear_cka", x, y, permutations=49, seed=0) for x, y in gaussian_pairs(3, 20, d=64)]
    raw_gap = np.mean([o["score"] for o in wide]) - np.mean([o["score"] for o in narrow])
    cal_gap = np.mean([o["calibrated"] for o in wide]) - np.mean([o["calibrated"] for o in narrow])
    assert raw_gap > 0.2  # about 0.95 vs 0.66
    assert abs(cal_gap) < 0.05


@pytest.mark.parametrize("name", CHEAP + ["rbf_cka"])
def test_planted_shared_signal_is_significant(name):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((32, 64))
    y = x @ rng.standard_normal((64, 48)) / 8 + 0.5 * rng.standard_normal((32, 48))
    out = calibrate(name, x, y, permutations=199, seed=0)
    assert out["p_value"] < 0.01  # 1 / 200: no shuffle reaches the observed score
    assert out["calibrated"] > 0.2


def test_measure_without_a_perfect_value_gets_no_calibrated_score_and_distances_are_rescaled():
    def mean_distance(x: View, y: View) -> float:  # lower = more similar, 0 for identical matrices
        return float(np.sqrt(((x.sq_dists - y.sq_dists) ** 2).mean()))

    unbounded = Measure("dist", "pairwise", mean_distance, "a distance", higher_is_similar=False)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 8))
    y = x + 0.1 * rng.standard_normal((30, 8))
    out = calibrate(unbounded, x, y, permutations=99)
    assert np.isnan(out["calibrated"]) and out["p_value"] == 0.01  # the one-sided test runs downwards
    bounded = Measure("dist", "pairwise", mean_distance, "a distance", higher_is_similar=False, perfect=0.0)
    out0 = calibrate(bounded, x, y, permutations=99)
    assert out0["calibrated"] == pytest.approx(1 - out0["score"] / out0["null_mean"])
    assert 0.5 < out0["calibrated"] < 1
    assert calibrate(bounded, x, x, permutations=9)["calibrated"] == 1.0


def test_adjusted_is_undefined_without_headroom():
    got = adjusted(np.array([0.5, 1.0, 0.7, np.nan]), np.array([0.5, 1.0, 0.2, 0.2]), np.array([1.0, 1.0, np.nan, 1.0]))
    assert got[0] == 0.0 and np.isnan(got[1:]).all()


def reps_for(rng, n_layers=2, n=30, d=12):
    control = rng.standard_normal((n_layers, n, d))
    return {"control": control, "pretrained": control + 2.0 * rng.standard_normal((n_layers, n, d)),
            "multitask": control + 0.3 * rng.standard_normal((n_layers, n, d)),
            "control@1": rng.standard_normal((n_layers, n, d))}


def test_frames_carry_the_null_for_every_measure_and_pair_equal_to_calibrate():
    """pairwise_frame(permutations=P, seed=s) row == calibrate(measure, x, y, permutations=P, seed=s): the
    same permutations (they depend on n, P and the seed only) applied to every layer, measure and pair."""
    reps = reps_for(np.random.default_rng(6))
    pairs = [("pretrained", "control"), ("multitask", "control"), ("control@1", "control"), ("multitask", "control@1")]
    f = pairwise_frame("rte", "nli", reps, pairs, CHEAP, permutations=29, seed=3)
    assert f.columns[-5:] == NULL_COLUMNS and f.height == len(CHEAP) * len(pairs) * 2
    assert f.select(NULL_COLUMNS).null_count().sum_horizontal().item() == 0
    for row in f.iter_rows(named=True):
        x, y = reps[row["experimental"]][row["layer"]], reps[row["control"]][row["layer"]]
        want = calibrate(row["measure"], x, y, permutations=29, seed=3)
        for col in ("null_mean", "null_q95", "p_value", "calibrated"):
            assert row[col] == pytest.approx(want[col], abs=1e-12), (row["measure"], col)
        assert row["value"] == pytest.approx(want["score"], abs=1e-12)


def test_task_frames_calibrate_every_row_and_keep_the_primary_intervals():
    reps = reps_for(np.random.default_rng(7))
    spec = [(name, {}) for name in CHEAP]
    sim = task_frames("rte", "nli", reps, spec, [], primary="linear_cka", calibrate=19, bootstrap=8, seed=2,
                      cross_layer=False)["similarity"]
    assert sim.select(NULL_COLUMNS).null_count().sum_horizontal().item() == 0  # every measure and pair
    assert set(sim["experimental"]) == {"pretrained", "multitask", "control@1"}
    with_ci = sim.filter(pl.col("ci_low").is_not_null())
    assert set(with_ci["measure"]) == {"linear_cka"} and set(with_ci["control"]) == {"control"}
    assert with_ci.height == 2 * 2  # pretrained and E against C_t, 2 layers
    # The half-samples do not shift the permutations: the null equals calibrate's with the same seed.
    row = sim.filter((pl.col("measure") == "linear_cka") & (pl.col("experimental") == "multitask")
                     & (pl.col("control") == "control") & (pl.col("layer") == 1)).row(0, named=True)
    want = calibrate("linear_cka", reps["multitask"][1], reps["control"][1], permutations=19, seed=2)
    assert row["null_mean"] == pytest.approx(want["null_mean"], abs=1e-12)
    assert row["p_value"] == want["p_value"]
    # Without calibration the null stays on the primary measure against C_t only.
    plain = task_frames("rte", "nli", reps, spec, [], primary="linear_cka", permutations=19, seed=2,
                        cross_layer=False)["similarity"]
    assert set(plain.filter(pl.col("p_value").is_not_null())["measure"]) == {"linear_cka"}
    assert plain.filter(pl.col("p_value").is_not_null()).height == 4


def test_permutations_index_the_cached_grams_instead_of_recomputing_them(monkeypatch):
    """Counts the Gram and centring computations: they are per (model, layer) and do not grow with P."""
    counts = {"gram": 0, "center": 0}

    def counting(fn, key):
        def wrapped(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(view_module, "_gram", counting(view_module._gram, "gram"))
    monkeypatch.setattr(view_module, "_gram64", counting(view_module._gram64, "gram"))
    monkeypatch.setattr(view_module, "center_gram", counting(view_module.center_gram, "center"))
    monkeypatch.setattr(cka_measures, "center_gram", counting(cka_measures.center_gram, "center"))
    reps = reps_for(np.random.default_rng(8), n=64, d=40)
    measures = ["linear_cka", "debiased_cka", "rbf_cka"]
    seen = []
    for permutations in (1, 25):
        counts.update(gram=0, center=0)
        pairwise_frame("t", "c", reps, [("multitask", "control")], measures, permutations=permutations)
        seen.append(dict(counts))
    assert seen[0] == seen[1]
    # 2 models x 2 layers: one gram + one gram64 (rbf's distances), one centring per measure
    assert seen[1] == {"gram": 2 * 2 * 2, "center": 2 * 2 * 3}


def test_a_permuted_view_indexes_the_parents_centred_gram(monkeypatch):
    rng = np.random.default_rng(9)
    view = View(rng.standard_normal((64, 640)))
    k = view.centered_gram()
    monkeypatch.setattr(view_module, "_gram", lambda v: pytest.fail("the Gram was recomputed"))
    monkeypatch.setattr(view_module, "center_gram", lambda *a, **kw: pytest.fail("the Gram was re-centred"))
    perm = rng.permutation(64)
    shuffled = view.permute(perm)
    np.testing.assert_array_equal(shuffled.centered_gram(), k[np.ix_(perm, perm)])  # P K Pᵀ, an index
    assert shuffled.centered_norm() == view.centered_norm()


@pytest.mark.parametrize("section, fragment", [
    ({"calibrate": {"permutations": 0}}, "analysis.calibrate.permutations: Input should be greater than or equal to 1"),
    ({"calibrate": {"permutaions": 9}}, "analysis.calibrate.permutaions: unknown key (did you mean 'permutations'?"),
    ({"calibrate": {"permutations": 9}, "permutations": 200}, "disagree"),
])
def test_bad_calibrate_config_fails_in_one_line(section, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config({"analysis": section})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_calibrate_config_default_and_off():
    assert parse_config({}).analysis.calibrate is None
    assert parse_config({"analysis": {"calibrate": {}}}).analysis.calibrate.permutations == 200
    assert parse_config({"analysis": {"calibrate": {"permutations": 200}, "permutations": 200}}).analysis.calibrate


def test_every_declared_perfect_value_is_what_identical_inputs_score():
    from analysis.measures import list_measures, measure_info

    x = np.random.default_rng(10).standard_normal((40, 12))
    declared = [name for name in list_measures("pairwise") if measure_info(name).perfect is not None]
    assert declared == list_measures("pairwise")  # every built-in similarity can be calibrated
    for name in declared:
        assert get_measure(name)(x, x) == pytest.approx(measure_info(name).perfect, abs=1e-9), name


def test_undefined_scores_stay_undefined():
    x = np.random.default_rng(11).standard_normal((20, 5))
    out = calibrate("linear_cka", x, np.ones((20, 5)), permutations=9)
    assert all(np.isnan(out[k]) for k in ("score", "null_mean", "p_value", "calibrated")) and out["n_permutations"] == 0
    with pytest.raises(ValueError, match="pairwise"):
        calibrate("pca99", x, x)
    with pytest.raises(ValueError, match=">= 1"):
        calibrate("linear_cka", x, x, permutations=0)


def test_compare_passes_calibration_through_to_the_similarity_frame():
    rng = np.random.default_rng(12)
    tasks = {"rte": "nli", "piqa": "commonsense"}
    reps = {m: {t: rng.standard_normal((2, 16, 6)) for t in tasks} for m in ("pretrained", "multitask", "control")}
    sim = analysis.compare(reps, tasks, measures=["linear_cka", "rsa"], draws=200, calibrate=9).similarity
    assert sim.select(NULL_COLUMNS).null_count().sum_horizontal().item() == 0
    assert set(sim["measure"]) == {"linear_cka", "rsa"} and (sim["n_permutations"] == 9).all()


def test_docstring_example_runs():
    import doctest

    import analysis.frames.calibration

    assert doctest.testmod(analysis.frames.calibration).failed == 0
