"""Frames: task CKA (+ bootstrap, permutation null), cross-layer, PCA, correlations, unseen, layer map, t-SNE."""

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import t as student_t

from analysis.cka import layerwise_cka, rbf_cka
from analysis.correlate import correlation_frame
from analysis.layer_map import layer_map_frame, segment_layers
from analysis.pca import n_components_for, pca_frame, variance_spectrum
from analysis.stats import pearson, spearman
from analysis.suite import cross_layer_frame, task_cka_frame
from analysis.tsne import tsne, tsne_frame
from analysis.unseen import unseen_frame


def reps_for(rng, n_layers=5, n=40, d=16):
    control = rng.standard_normal((n_layers, n, d))
    return {
        "control": control,
        "pretrained": control + 2.0 * rng.standard_normal((n_layers, n, d)),
        "multitask": control + 0.3 * rng.standard_normal((n_layers, n, d)),
        "unrelated": rng.standard_normal((n_layers, n, d)),
    }


def test_task_cka_frame_values_and_estimator_columns():
    reps = reps_for(np.random.default_rng(0))
    f = task_cka_frame("rte", "nli", reps, "control", ["pretrained", "multitask"], kernel="linear", debiased=True)
    assert f.height == 2 * 5
    for col in ("experimental", "task", "cluster", "layer", "cka", "n", "kernel", "debiased"):
        assert col in f.columns
    assert set(f["kernel"]) == {"linear"} and set(f["debiased"]) == {True} and set(f["n"]) == {40}
    got = f.filter(pl.col("experimental") == "multitask").sort("layer")["cka"].to_numpy()
    np.testing.assert_allclose(got, layerwise_cka(reps["multitask"], reps["control"], debiased=True), atol=1e-12)
    g = task_cka_frame("rte", "nli", reps, "control", ["pretrained"], kernel="rbf", threshold=0.5)
    assert g["threshold"][0] == 0.5
    assert g.sort("layer")["cka"][0] == pytest.approx(rbf_cka(reps["pretrained"][0], reps["control"][0], 0.5))
    with pytest.raises(KeyError):
        task_cka_frame("rte", "nli", reps, "nope", ["pretrained"])


def test_bootstrap_ci_is_seeded_and_brackets_estimate():
    reps = reps_for(np.random.default_rng(1))
    args = ("rte", "nli", reps, "control", ["pretrained", "multitask"])
    a = task_cka_frame(*args, bootstrap=60, seed=3)
    b = task_cka_frame(*args, bootstrap=60, seed=3)
    c = task_cka_frame(*args, bootstrap=60, seed=4)
    assert a.equals(b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    assert (a["ci_low"] <= a["ci_high"]).all()
    assert ((a["ci_low"] <= a["cka"]) & (a["cka"] <= a["ci_high"])).all()
    width = (a["ci_high"] - a["ci_low"]).to_numpy().reshape(2, 5)
    assert (width[0] > width[1]).all()  # noisier pretrained pair: wider interval
    assert 0.005 < width[1].mean() < width[0].mean() < 0.5


def test_interval_width_tracks_sampling_spread():
    """Half-sample intervals vs the real spread of CKA over fresh samples (biased estimator)."""
    rng = np.random.default_rng(0)
    n, d = 60, 30
    w = rng.standard_normal((d, d)) / np.sqrt(d)
    values, widths = [], []
    for _ in range(30):
        z = rng.standard_normal((1, n, d))
        reps = {"control": z, "pre": np.tanh(z @ w) + 1.2 * rng.standard_normal((1, n, d))}
        f = task_cka_frame("t", "c", reps, "control", ["pre"], bootstrap=60, seed=1)
        values.append(f["cka"][0])
        widths.append(f["ci_high"][0] - f["ci_low"][0])
    true_width = 3.92 * np.std(values)
    assert 0.6 * true_width < np.mean(widths) < 1.8 * true_width


def test_permutation_null_separates_related_from_unrelated():
    reps = reps_for(np.random.default_rng(2))
    f = task_cka_frame("rte", "nli", reps, "control", ["multitask", "unrelated"], debiased=True, permutations=99)
    rel = f.filter(pl.col("experimental") == "multitask")
    unrel = f.filter(pl.col("experimental") == "unrelated")
    assert (rel["p_perm"] == 0.01).all()  # (1 + 0) / (1 + 99)
    assert (rel["cka"] > rel["null_q95"]).all()
    assert unrel["p_perm"].min() > 0.01
    assert abs(unrel["null_mean"].mean()) < 0.05  # debiased null is centred near 0


def test_cross_layer_frame_diagonal_matches_task_frame():
    reps = reps_for(np.random.default_rng(3))
    cross = cross_layer_frame("rte", "nli", reps, "control", ["pretrained", "multitask"])
    assert cross.height == 2 * 5 * 5
    task = task_cka_frame("rte", "nli", reps, "control", ["pretrained", "multitask"])
    diag = cross.filter(pl.col("layer") == pl.col("control_layer")).select("experimental", "layer", "cka")
    joined = diag.join(task.select("experimental", "layer", pl.col("cka").alias("ref")), on=["experimental", "layer"])
    assert joined.height == 10
    np.testing.assert_allclose(joined["cka"], joined["ref"], atol=1e-10)


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
    f = pca_frame("rte", "nli", {"m": np.stack([wide, 2 * wide]), "narrow": wide[None, :, :5]}, threshold=0.99)
    assert f["rank_cap"].to_list() == [9, 9, 5]
    assert f["n_components"][0] <= 9 and bool(f["at_cap"][0]) == (f["n_components"][0] == 9)
    assert n_components_for(np.zeros(5)) == 0


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
    layers = np.arange(n_layers)
    delta = np.where(layers <= k1, -0.05, np.where(layers <= k2, -0.05 + 0.3 * (layers - k1) / (k2 - k1), 0.25))
    delta = delta + 0.002 * np.random.default_rng(0).standard_normal(n_layers) * (n_layers > 6)
    got1, got2, slopes = segment_layers(layers, delta)
    assert (got1, got2) == (k1, k2)
    assert slopes[1] > abs(slopes[0]) and slopes[1] > abs(slopes[2])
    pre = 0.9 - 0.01 * layers
    cka = _curve_frame(pre, pre + delta)
    lm = layer_map_frame(pl.concat([cka, _curve_frame(pre, pre - 0.5, cluster="unseen")]))  # unseen ignored
    assert lm["function"].to_list() == ["shared"] * (k1 + 1) + ["transition"] * (k2 - k1) + ["refinement"] * (n_layers - k2 - 1)
    with pytest.raises(ValueError):
        layer_map_frame(cka.filter(pl.col("experimental") == "pretrained"))


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
