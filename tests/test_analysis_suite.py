"""Frames: pairwise measures (+ bootstrap, permutation null), single measures, cross-layer, PCA,
correlations, unseen, layer map, t-SNE."""

import math

import numpy as np
import polars as pl
import pytest
import torch
from scipy.stats import t as student_t

from analysis.derived.correlate import correlation_frame
from analysis.derived.layer_map import fit_change_points, segment_slopes
from analysis.derived.stats import pearson, spearman
from analysis.derived.tsne import tsne, tsne_frame
from analysis.derived.unseen import unseen_frame
from analysis.frames.suite import cross_layer_frame, pairwise_frame, single_frame
from analysis.measures import get_measure, list_measures, standardize
from analysis.measures.pca99 import n_components_for
from tests.references import ref_debiased_cka, ref_rbf_cka
from tests.references import ref_variance_spectrum as variance_spectrum

PAIRS = [("pretrained", "control"), ("multitask", "control")]
PAIRWISE_COLUMNS = ["measure", "experimental", "control", "task", "cluster", "layer", "value", "n", "standardized"]


def reps_for(rng, n_layers=5, n=40, d=16):
    control = rng.standard_normal((n_layers, n, d))
    return {
        "control": control,
        "pretrained": control + 2.0 * rng.standard_normal((n_layers, n, d)),
        "multitask": control + 0.3 * rng.standard_normal((n_layers, n, d)),
        "unrelated": rng.standard_normal((n_layers, n, d)),
    }


def test_pairwise_frame_values_columns_and_types():
    reps = reps_for(np.random.default_rng(0))
    f = pairwise_frame("rte", "nli", reps, PAIRS, ["debiased_cka"])
    assert f.columns == PAIRWISE_COLUMNS
    assert f.schema["layer"] == pl.Int64 and f.schema["value"] == pl.Float64 and f.schema["n"] == pl.Int64
    assert f.schema["standardized"] == pl.Boolean
    assert f.height == 2 * 5
    assert set(f["measure"]) == {"debiased_cka"} and set(f["n"]) == {40} and set(f["standardized"]) == {False}
    assert set(f["task"]) == {"rte"} and set(f["cluster"]) == {"nli"} and set(f["control"]) == {"control"}
    got = f.filter(pl.col("experimental") == "multitask").sort("layer")["value"].to_numpy()
    np.testing.assert_allclose(got, [ref_debiased_cka(a, b) for a, b in zip(reps["multitask"], reps["control"])], atol=1e-12)
    g = pairwise_frame("rte", "nli", reps, [("pretrained", "control")], [("rbf_cka", {"threshold": 0.5})])
    assert g.sort("layer")["value"][0] == pytest.approx(ref_rbf_cka(reps["pretrained"][0], reps["control"][0], 0.5))
    with pytest.raises(KeyError):
        pairwise_frame("rte", "nli", reps, [("pretrained", "nope")], ["linear_cka"])
    with pytest.raises(ValueError):
        pairwise_frame("rte", "nli", reps, PAIRS, ["pca99"])  # a single measure


def test_pairwise_frame_every_measure_matches_the_callable():
    reps = reps_for(np.random.default_rng(5), n_layers=3, n=30, d=12)
    names = list_measures("pairwise")
    f = pairwise_frame("rte", "nli", reps, PAIRS, names)
    assert f.height == len(names) * 2 * 3
    assert f["measure"].unique(maintain_order=True).to_list() == names
    for row in f.iter_rows(named=True):
        expected = get_measure(row["measure"])(reps[row["experimental"]][row["layer"]], reps["control"][row["layer"]])
        assert row["value"] == pytest.approx(expected, abs=1e-12), row


def test_undefined_values_are_null():
    reps = reps_for(np.random.default_rng(6), n_layers=2)
    reps["control"] = reps["control"].copy()
    reps["control"][0] = reps["control"][0, :1]  # layer 0: every probe is the same point
    f = pairwise_frame("rte", "nli", reps, PAIRS, ["linear_cka", "mutual_knn"], bootstrap=5, permutations=5)
    assert f.filter(pl.col("layer") == 0)["value"].null_count() == 4
    assert f.filter(pl.col("layer") == 1)["value"].null_count() == 0
    assert f.filter(pl.col("layer") == 0)["p_value"].null_count() == 4


def test_bootstrap_ci_is_seeded_and_brackets_estimate():
    reps = reps_for(np.random.default_rng(1))
    args = ("rte", "nli", reps, PAIRS, ["linear_cka"])
    a = pairwise_frame(*args, bootstrap=60, seed=3)
    b = pairwise_frame(*args, bootstrap=60, seed=3)
    c = pairwise_frame(*args, bootstrap=60, seed=4)
    assert a.columns == PAIRWISE_COLUMNS + ["ci_low", "ci_high", "n_bootstrap"]
    assert a.equals(b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    assert (a["ci_low"] <= a["ci_high"]).all()
    assert ((a["ci_low"] <= a["value"]) & (a["value"] <= a["ci_high"])).all()
    assert (a["n_bootstrap"] == 60).all()
    width = (a["ci_high"] - a["ci_low"]).to_numpy().reshape(2, 5)
    assert (width[0] > width[1]).all()  # noisier pretrained pair: wider interval
    assert 0.005 < width[1].mean() < width[0].mean() < 0.5


@pytest.mark.parametrize("name", ["debiased_cka", "mutual_knn", "cknna", "procrustes", "rsa", "svcca"])
def test_bootstrap_is_generic_over_measures(name):
    """Every measure gets a seeded interval that brackets it and widens for the noisier pair."""
    reps = reps_for(np.random.default_rng(11), n_layers=3, n=60, d=12)
    f = pairwise_frame("rte", "nli", reps, PAIRS, [name], bootstrap=40, seed=2)
    assert ((f["ci_low"] <= f["value"]) & (f["value"] <= f["ci_high"])).all()
    width = (f["ci_high"] - f["ci_low"]).to_numpy().reshape(2, 3)
    assert width.mean(axis=1)[0] > width.mean(axis=1)[1]
    assert f.equals(pairwise_frame("rte", "nli", reps, PAIRS, [name], bootstrap=40, seed=2))


def test_interval_width_tracks_sampling_spread():
    """Half-sample intervals vs the real spread of CKA over fresh samples (biased estimator)."""
    rng = np.random.default_rng(0)
    n, d = 60, 30
    w = rng.standard_normal((d, d)) / np.sqrt(d)
    values, widths = [], []
    for _ in range(30):
        z = rng.standard_normal((1, n, d))
        reps = {"control": z, "pre": np.tanh(z @ w) + 1.2 * rng.standard_normal((1, n, d))}
        f = pairwise_frame("t", "c", reps, [("pre", "control")], ["linear_cka"], bootstrap=60, seed=1)
        values.append(f["value"][0])
        widths.append(f["ci_high"][0] - f["ci_low"][0])
    true_width = 3.92 * np.std(values)
    assert 0.6 * true_width < np.mean(widths) < 1.8 * true_width


def test_permutation_null_separates_related_from_unrelated():
    reps = reps_for(np.random.default_rng(2))
    pairs = [("multitask", "control"), ("unrelated", "control")]
    f = pairwise_frame("rte", "nli", reps, pairs, ["debiased_cka", "mutual_knn", "rsa"], permutations=99)
    assert f.columns[-5:] == ["null_mean", "null_q95", "p_value", "n_permutations", "calibrated"]
    assert (f["n_permutations"] == 99).all()
    for name in ("debiased_cka", "mutual_knn", "rsa"):
        rel = f.filter((pl.col("experimental") == "multitask") & (pl.col("measure") == name))
        unrel = f.filter((pl.col("experimental") == "unrelated") & (pl.col("measure") == name))
        assert (rel["p_value"] == 0.01).all(), name  # (1 + 0) / (1 + 99)
        assert (rel["value"] > rel["null_q95"]).all(), name
        assert unrel["p_value"].min() > 0.01, name
    debiased = f.filter((pl.col("experimental") == "unrelated") & (pl.col("measure") == "debiased_cka"))
    assert abs(debiased["null_mean"].mean()) < 0.05  # debiased null is centred near 0
    knn = f.filter(pl.col("measure") == "mutual_knn")
    assert abs(knn["null_mean"].mean() - 10 / 39) < 0.05  # chance overlap k/(n-1)


def test_standardize_removes_a_massive_dimension():
    rng = np.random.default_rng(3)
    reps = reps_for(rng, n_layers=2)
    for m in ("pretrained", "control"):  # one shared massive feature dominates linear CKA
        reps[m] = reps[m].copy()
    massive = 300.0 * rng.standard_normal((2, 40))
    reps["pretrained"][:, :, 0] += massive
    reps["control"][:, :, 0] += massive
    raw = pairwise_frame("t", "c", reps, [("pretrained", "control")], ["linear_cka"])
    std = pairwise_frame("t", "c", reps, [("pretrained", "control")], ["linear_cka"], standardize=True)
    assert set(std["standardized"]) == {True}
    assert raw["value"].min() > 0.99 and std["value"].max() < 0.9
    expected = get_measure("linear_cka")(standardize(reps["pretrained"][1]), standardize(reps["control"][1]))
    assert std.sort("layer")["value"][1] == pytest.approx(expected, abs=1e-12)


def test_frames_take_torch_tensors():
    reps = reps_for(np.random.default_rng(4), n_layers=2)
    tensors = {m: torch.from_numpy(a).float() for m, a in reps.items()}
    names = ["linear_cka", "mutual_knn", "procrustes"]
    a = pairwise_frame("t", "c", reps, PAIRS, names, bootstrap=5)
    b = pairwise_frame("t", "c", tensors, PAIRS, names, bootstrap=5)
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-6)
    np.testing.assert_allclose(a["ci_low"], b["ci_low"], atol=1e-5)
    s = single_frame("t", "c", tensors, ["pca99", "massive_ratio"])
    np.testing.assert_allclose(s["value"], single_frame("t", "c", reps, ["pca99", "massive_ratio"])["value"], rtol=1e-6)


def test_single_frame_columns_and_values():
    reps = reps_for(np.random.default_rng(7), n_layers=3)
    reps["narrow"] = reps["control"][:, :20, :5]
    names = list_measures("single")
    f = single_frame("rte", "nli", reps, names)
    assert f.columns == ["measure", "model", "task", "cluster", "layer", "value", "n", "d"]
    assert f.height == len(names) * 5 * 3
    assert f["measure"].unique(maintain_order=True).to_list() == names
    narrow = f.filter(pl.col("model") == "narrow")
    assert set(narrow["n"]) == {20} and set(narrow["d"]) == {5}
    for row in f.iter_rows(named=True):
        assert row["value"] == pytest.approx(get_measure(row["measure"])(reps[row["model"]][row["layer"]]), abs=1e-12)
    with pytest.raises(ValueError):
        single_frame("rte", "nli", reps, ["linear_cka"])


def test_cross_layer_frame_diagonal_matches_pairwise_frame():
    reps = reps_for(np.random.default_rng(3))
    names = ["linear_cka", "debiased_cka", ("rbf_cka", {"threshold": 0.7})]
    cross = cross_layer_frame("rte", "nli", reps, PAIRS, names)
    assert cross.columns == ["measure", "experimental", "control", "task", "cluster", "layer", "control_layer", "value", "n"]
    assert cross.height == 3 * 2 * 5 * 5
    task = pairwise_frame("rte", "nli", reps, PAIRS, names)
    diag = cross.filter(pl.col("layer") == pl.col("control_layer")).select("measure", "experimental", "layer", "value")
    joined = diag.join(task.select("measure", "experimental", "layer", pl.col("value").alias("ref")),
                       on=["measure", "experimental", "layer"])
    assert joined.height == 30
    np.testing.assert_allclose(joined["value"], joined["ref"], atol=1e-10)
    std = cross_layer_frame("rte", "nli", reps, PAIRS, ["linear_cka"], standardize=True)
    std_task = pairwise_frame("rte", "nli", reps, PAIRS, ["linear_cka"], standardize=True)
    on_diag = std.filter(pl.col("layer") == pl.col("control_layer")).sort("experimental", "layer")["value"]
    np.testing.assert_allclose(on_diag, std_task.sort("experimental", "layer")["value"], atol=1e-10)
    with pytest.raises(ValueError, match="mutual_knn"):
        cross_layer_frame("rte", "nli", reps, PAIRS, ["linear_cka", "mutual_knn"])


# ---------------------------------------------------------------- PCA


def test_pca_dims_known_spectrum_and_rank_cap():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((50, 50)))[0][:, :3]
    x = rng.standard_normal((200, 3)) @ basis.T  # rank 3, n > d
    assert n_components_for(variance_spectrum(x)) == 3
    one = np.column_stack([100 * rng.standard_normal(200), rng.standard_normal((200, 5))])
    assert n_components_for(variance_spectrum(one)) == 1  # 10000 / (10000 + 5) > 0.99
    wide = rng.standard_normal((10, 300))  # n < d: rank <= n - 1 = 9
    spec = variance_spectrum(wide)
    assert spec[9:].max() < 1e-9 * spec[0]
    f = single_frame("rte", "nli", {"m": np.stack([wide, 2 * wide]), "narrow": wide[None, :, :5]},
                     [("pca99", {"threshold": 0.99})])
    rank_cap = [min(n - 1, d) for n, d in zip(f["n"], f["d"])]
    assert rank_cap == [9, 9, 5]
    assert (f["value"] <= pl.Series(rank_cap)).all() and f["value"][0] == f["value"][1]  # scale-free
    assert f["value"][0] == n_components_for(variance_spectrum(wide), 0.99)
    assert n_components_for(np.zeros(5)) == 0
    assert get_measure("pca99")(np.ones((6, 4))) == 0.0  # constant data: no components


# ---------------------------------------------------------------- statistics


def test_pearson_spearman():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = 0.5 * x + rng.standard_normal(30)
    r, p = pearson(x, y)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    # p is the two-sided tail of t = r sqrt((n-2)/(1-r²)) under Student's t with n-2 df.
    t = r * math.sqrt(28 / (1 - r * r))
    assert p == pytest.approx(2 * student_t.sf(abs(t), 28), rel=1e-9)
    r10, p10 = pearson([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2, 1, 4, 3, 7, 5, 6, 10, 8, 9])
    assert p10 < 0.01 and r10 > 0.8
    assert spearman(x, np.exp(x))[0] == pytest.approx(1.0)
    assert spearman([3, 1, 3, 2], [4, 1, 4, 2])[0] == pytest.approx(1.0)  # ties share their average rank
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3])[0])


def test_correlation_frame_per_layer():
    tasks = [f"t{i}" for i in range(8)]
    fk = np.linspace(5, 12, 8)
    rows = []
    for layer in range(3):
        for t, v in zip(tasks, fk):
            rows.append(("multitask", t, "c", layer, 0.1 * v if layer == 2 else 1.0 - 0.05 * v))
            rows.append(("pretrained", t, "c", layer, float(np.sin(v * 7 + layer))))
    rows.append(("multitask", "u", "unseen", 0, 5.0))
    cka = pl.DataFrame(rows, schema=["experimental", "task", "cluster", "layer", "cka"], orient="row")
    stats = pl.DataFrame({"task": tasks + ["u"], "cluster": ["c"] * 8 + ["unseen"], "train_size": list(range(9)),
                          "flesch_kincaid": list(fk) + [0.0], "coleman_liau": list(fk[::-1]) + [0.0]})
    f = correlation_frame(cka, stats)
    mt = f.filter((pl.col("experimental") == "multitask") & (pl.col("measure") == "flesch_kincaid"))
    assert mt.sort("layer")["pearson_r"].to_list() == pytest.approx([-1, -1, 1])
    assert (mt["n_tasks"] == 8).all()  # the unseen task is left out
    cl = f.filter((pl.col("experimental") == "multitask") & (pl.col("measure") == "coleman_liau") & (pl.col("layer") == 2))
    assert cl["spearman_rho"][0] == pytest.approx(-1.0)


# ---------------------------------------------------------------- unseen, layer map


def _curve_frame(pre, mt, cluster="c", n_tasks=3):
    rows = []
    for t in range(n_tasks):
        for layer, (a, b) in enumerate(zip(pre, mt)):
            rows.append(("pretrained", f"{cluster}{t}", cluster, layer, a + 0.01 * t))
            rows.append(("multitask", f"{cluster}{t}", cluster, layer, b + 0.01 * t))
    return pl.DataFrame(rows, schema=["experimental", "task", "cluster", "layer", "cka"], orient="row")


def test_unseen_frame():
    seen = _curve_frame([0.9, 0.8, 0.7], [0.8, 0.85, 0.9])
    unseen = _curve_frame([0.5, 0.5, 0.5], [0.4, 0.6, 0.7], cluster="unseen", n_tasks=2)
    f = unseen_frame(pl.concat([seen, unseen]))
    u = f.filter((pl.col("group") == "unseen") & (pl.col("experimental") == "multitask")).sort("layer")
    assert u["n_tasks"].to_list() == [2, 2, 2]
    assert u["tuned_minus_base"].to_list() == pytest.approx([-0.1, 0.1, 0.2])
    s = f.filter((pl.col("group") == "seen") & (pl.col("experimental") == "pretrained")).sort("layer")
    assert s["mean"].to_list() == pytest.approx([0.91, 0.81, 0.71])


@pytest.mark.parametrize("k1,k2,n_layers", [(9, 15, 33), (3, 6, 12), (1, 2, 5)])
def test_layer_map_recovers_change_points(k1, k2, n_layers):
    """The segmented fit behind the layer map (its frame, built from gap curves with a noise floor, is
    tested in tests/test_findings.py)."""
    layers = np.arange(n_layers)
    delta = np.where(layers <= k1, -0.05, np.where(layers <= k2, -0.05 + 0.3 * (layers - k1) / (k2 - k1), 0.25))
    delta = delta + 0.002 * np.random.default_rng(0).standard_normal(n_layers) * (n_layers > 6)
    got1, got2 = fit_change_points(layers, delta)
    assert (int(got1[0]), int(got2[0])) == (k1, k2)
    slopes = segment_slopes(layers, delta, k1, k2)
    assert slopes[1] > abs(slopes[0]) and slopes[1] > abs(slopes[2])
    with pytest.raises(ValueError):
        fit_change_points(layers[:3], delta[:3])


# ---------------------------------------------------------------- t-SNE


def test_tsne_separates_clusters_and_is_seeded():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 20)) * 8
    labels = np.repeat(np.arange(3), 25)
    x = centers[labels] + rng.standard_normal((75, 20))
    emb = tsne(x, perplexity=10, n_iter=300, seed=1)
    np.testing.assert_array_equal(emb, tsne(x, perplexity=10, n_iter=300, seed=1))
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :5]
    assert (labels[nearest] == labels[:, None]).mean() > 0.95
    frame = tsne_frame({"m": np.stack([x, x[:, ::-1]])}, [f"t{l}" for l in labels], [f"c{l}" for l in labels],
                       layers=[1], perplexity=10, n_iter=100, max_points=50)
    assert frame.height == 50 and set(frame["layer"]) == {1}
    assert {"model", "layer", "point", "task", "cluster", "x", "y"} <= set(frame.columns)
