"""The measure registry: every measure against a plain reference written here from its definition,
the invariances its definition gives, and the view machinery (shared quantities, subsets, permutations)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.measures import PAPER_MEASURES, View, get_measure, list_measures, measure_info, register, registry, standardize
from tests.references import (
    PAIRWISE_REFS,
    SINGLE_REFS,
    ref_cca,
    ref_mutual_knn_count,
    ref_pca99,
    ref_pca_scores,
    ref_prompt_entropy,
    ref_twonn,
)

# From the registry, so a registered measure without a reference fails its agreement test.
PAIRWISE = list_measures("pairwise")
SINGLE = list_measures("single")

def related_pair(rng, n, d1, d2, massive=True):
    """x with per-feature scales, offsets and (optionally) two massive dimensions; y a noisy nonlinear view of x."""
    x = rng.standard_normal((n, d1)) * rng.uniform(0.2, 3.0, size=d1) + rng.normal(0, 2, size=d1)
    if massive:
        x[:, :2] = 40.0 * x[:, :2] + 100.0
    y = np.tanh(x @ rng.standard_normal((d1, d2)) / np.sqrt(d1) / 10) + 0.3 * rng.standard_normal((n, d2))
    return x, y


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


SHAPES = [(12, 5, 7), (40, 90, 60), (60, 25, 30), (150, 20, 12), (30, 200, 150)]

# ---------------------------------------------------------------- registry


def test_every_registered_measure_has_a_reference():
    missing = sorted(set(list_measures()) - set(PAIRWISE_REFS) - set(SINGLE_REFS))
    assert not missing, f"registered measures with no reference in tests/references.py: {missing}"


def test_registry_lists_every_measure_with_its_record():
    assert set(PAIRWISE) <= set(list_measures("pairwise"))
    assert set(SINGLE) <= set(list_measures("single"))
    assert list_measures() == list_measures("pairwise") + list_measures("single")
    for name in list_measures():
        info = measure_info(name)
        assert info.name == name and info.kind in ("pairwise", "single")
        assert info.description and "\n" not in info.description
        if info.kind == "pairwise":
            assert isinstance(info.higher_is_similar, bool)
        else:
            assert info.meaning
    assert measure_info("rbf_cka").params == {"threshold": 1.0, "debiased": False, "sigma": None}
    assert measure_info("mutual_knn").params == {"k": 10, "normalize": True}
    assert measure_info("pca99").params == {"threshold": 0.99}
    assert measure_info("linear_cka").params == {}
    for name in ("linear_cka", "debiased_cka", "rbf_cka"):
        assert measure_info(name).estimator is not None and measure_info(name).cross_layer is not None
    assert measure_info("linear_cka").estimator_columns() == {"kernel": "linear", "debiased": False, "threshold": None}
    assert measure_info("debiased_cka").estimator_columns()["debiased"] is True
    assert measure_info("rbf_cka").estimator_columns({"threshold": 0.5}) == {"kernel": "rbf", "debiased": False,
                                                                             "threshold": 0.5}
    with pytest.raises(ValueError):
        measure_info("rsa").estimator_columns()
    assert measure_info(PAPER_MEASURES["similarity"]).kind == "pairwise"
    assert measure_info(PAPER_MEASURES["dimensionality"]).kind == "single"


def test_unknown_names_and_parameters():
    with pytest.raises(KeyError) as err:
        get_measure("linear_ckaa")
    message = str(err.value)
    assert "did you mean 'linear_cka'" in message.lower() and "procrustes" in message and "\n" not in message
    x = np.random.default_rng(0).standard_normal((20, 5))
    with pytest.raises(TypeError):
        get_measure("mutual_knn")(x, x, kk=3)
    with pytest.raises(TypeError):
        get_measure("pca99")(x, x)  # a single measure takes one matrix
    with pytest.raises(ValueError):
        get_measure("linear_cka")(x, x[:10])
    assert get_measure("mutual_knn")(x, x, k=3.0) == 1.0  # YAML floats for int parameters are accepted


def test_registering_a_measure_is_one_decorator(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register("mean_abs_gap", kind="pairwise", higher_is_similar=False, description="toy: mean |x - y|")
    def mean_abs_gap(x: View, y: View, *, scale: float = 1.0) -> float:
        return scale * float(np.abs(x.features - y.features).mean())

    assert "mean_abs_gap" in list_measures("pairwise")
    assert measure_info("mean_abs_gap").params == {"scale": 1.0}
    assert get_measure("mean_abs_gap")(np.eye(3), np.eye(3), scale=2.0) == 0.0
    with pytest.raises(ValueError):
        register("mean_abs_gap", kind="pairwise", higher_is_similar=True, description="again")(mean_abs_gap)
    with pytest.raises(ValueError):
        register("no_direction", kind="pairwise", description="says nothing")(mean_abs_gap)


def test_measure_names_appear_only_where_allowed():
    """Code outside the measure modules and the registry never spells a measure's name."""
    root = Path(__file__).resolve().parents[1]
    names = "|".join(re.escape(n) for n in list_measures())
    pattern = re.compile(rf"[\"']({names})[\"']")
    # The config documents names in comments; the analysis API's docstring example calls measures as a user would.
    allowed = {root / "runner" / "config.py", root / "analysis" / "api.py"}
    offenders = []
    for package in ("analysis", "runner", "tasks"):
        for path in (root / package).rglob("*.py"):
            if path in allowed or (root / "analysis" / "measures") in path.parents:
                continue
            offenders += [f"{path.relative_to(root)}: {m.group(0)}" for m in pattern.finditer(path.read_text())]
    assert not offenders, offenders


# ---------------------------------------------------------------- agreement with the references


@pytest.mark.parametrize("n,d1,d2", SHAPES)
@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_matches_reference(name, n, d1, d2):
    if name == "pwcca" and d1 + d2 >= n - 1:
        pytest.skip("the two principal subspaces intersect (repeated canonical correlations of 1): the canonical "
                    "variates inside that block are not unique, so neither is PWCCA; see test_pwcca_when_degenerate")
    rng = np.random.default_rng(1000 + 7 * n + d1)
    x, y = related_pair(rng, n, d1, d2)
    value = get_measure(name)(x, y)
    assert isinstance(value, float)
    assert abs(value - PAIRWISE_REFS[name](x, y)) < 1e-6


def test_pwcca_when_degenerate():
    """With kx + ky > n - 1, several canonical correlations are exactly 1; PWCCA is then a weighted mean
    that still lies between the smallest and largest correlation, and equals 1 for identical inputs."""
    rng = np.random.default_rng(1000 + 7 * 40 + 90)
    x, y = related_pair(rng, 40, 90, 60)
    rho, _, _ = ref_cca(ref_pca_scores(x, 0.99), ref_pca_scores(y, 0.99))
    assert np.sum(rho > 1 - 1e-9) >= 2
    assert rho.min() - 1e-12 <= get_measure("pwcca")(x, y) <= 1.0
    assert get_measure("pwcca")(x, x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name,params", [("rbf_cka", {"threshold": 0.5, "debiased": True}), ("mutual_knn", {"k": 3}),
                                         ("cknna", {"k": 5}), ("svcca", {"threshold": 0.9}), ("pwcca", {"threshold": 0.9})])
def test_pairwise_parameters_match_reference(name, params):
    rng = np.random.default_rng(5)
    x, y = related_pair(rng, 50, 40, 30)
    assert abs(get_measure(name)(x, y, **params) - PAIRWISE_REFS[name](x, y, **params)) < 1e-6


@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_mutual_knn_counts_are_exact(n, d1, d2):
    rng = np.random.default_rng(n + d2)
    x, y = related_pair(rng, n, d1, d2)
    for k in (1, 4, 10, n + 5):  # k above n - 1 is capped at n - 1
        kk = min(k, n - 1)
        value = get_measure("mutual_knn")(x, y, k=k)
        assert round(value * n * kk) == ref_mutual_knn_count(x, y, k)
        assert value == ref_mutual_knn_count(x, y, k) / (n * kk)


@pytest.mark.parametrize("n,d", [(40, 90), (150, 20), (12, 5)])
@pytest.mark.parametrize("name", SINGLE)
def test_single_matches_reference(name, n, d):
    rng = np.random.default_rng(n * d)
    x, _ = related_pair(rng, n, d, 3)
    value = get_measure(name)(x)
    assert isinstance(value, float)
    if name == "pca99":
        assert value == ref_pca99(x)
    else:
        assert abs(value - SINGLE_REFS[name](x)) < 1e-6 * max(1.0, abs(value))


def test_single_parameters_and_known_values():
    rng = np.random.default_rng(0)
    x, _ = related_pair(rng, 60, 30, 3)
    assert abs(get_measure("prompt_entropy")(x, alpha=2.0) - ref_prompt_entropy(x, alpha=2.0)) < 1e-9
    assert get_measure("pca99")(x, threshold=0.5) == ref_pca99(x, 0.5)
    assert abs(get_measure("twonn_id")(x, discard_fraction=0.0) - ref_twonn(x, 0.0)) < 1e-9
    # TwoNN recovers the dimension of a flat manifold embedded in more dimensions
    plane = rng.uniform(size=(1500, 3)) @ random_orthogonal(rng, 12)[:3]
    assert 2.6 < get_measure("twonn_id")(plane) < 3.4
    # entropy: log n for orthogonal rows, 0 for collinear ones; massive ratio sees an outlier
    assert get_measure("prompt_entropy")(np.eye(8)) == pytest.approx(np.log(8), abs=1e-12)
    assert get_measure("prompt_entropy")(np.outer(np.arange(1, 6), np.ones(4))) == pytest.approx(0.0, abs=1e-9)
    z = rng.standard_normal((50, 40))
    z[3, 7] = 1e4
    assert get_measure("massive_ratio")(z) > 1e3 > get_measure("massive_ratio")(rng.standard_normal((50, 40)))


# ---------------------------------------------------------------- invariances and extremes

ROTATION_INVARIANT = ["linear_cka", "debiased_cka", "rbf_cka", "procrustes", "mutual_knn", "cknna", "svcca"]
SCALE_INVARIANT = ROTATION_INVARIANT + ["rsa", "pwcca"]


@pytest.mark.parametrize("n,d", [(60, 25), (30, 80)])
def test_invariances(n, d):
    rng = np.random.default_rng(n + d)
    x, y = related_pair(rng, n, d, d)
    q1, q2 = random_orthogonal(rng, d), random_orthogonal(rng, d)
    for name in SCALE_INVARIANT:
        f, base = get_measure(name), get_measure(name)(x, y)
        assert abs(f(3.7 * x, 0.02 * y) - base) < 1e-9, name
        if name in ROTATION_INVARIANT:
            assert abs(f(x @ q1, y @ q2) - base) < 1e-9, name
            assert abs(f(x @ q1 * 1e3, y) - base) < 1e-9, name
        # a non-isotropic rescale moves every one of them (so the checks above can fail)
        assert abs(f(x * np.linspace(0.01, 10, d), y) - base) > 1e-4, name


@pytest.mark.parametrize("name", PAIRWISE)
def test_identical_inputs_give_the_maximum(name):
    rng = np.random.default_rng(3)
    x, y = related_pair(rng, 40, 30, 20)
    f = get_measure(name)
    assert f(x, x) == pytest.approx(1.0, abs=1e-9)
    assert f(x, y) < 1.0 - 1e-6
    # pwcca weights one side's variates; cknna's masked kernels are not symmetric, and Song's cross term
    # 1ᵀ K̃ L̃ 1 then differs from 1ᵀ L̃ K̃ 1 (so in the reference too)
    assert f(x, y) == pytest.approx(f(y, x), abs=1e-12) or name in ("pwcca", "cknna")


@pytest.mark.parametrize("name", PAIRWISE)
def test_no_variance_is_undefined_not_a_number(name):
    """A layer where every probe is the same point (e.g. layer 0 when all end with one token)."""
    rng = np.random.default_rng(4)
    same = np.tile(rng.standard_normal(30), (20, 1))
    assert np.isnan(get_measure(name)(same, rng.standard_normal((20, 30))))


def test_unrelated_inputs_score_low():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((300, 40)), rng.standard_normal((300, 40))
    assert abs(get_measure("debiased_cka")(x, y)) < 0.05
    assert get_measure("mutual_knn")(x, y) < 0.1  # chance is k/(n-1) = 0.03
    assert abs(get_measure("rsa")(x, y)) < 0.05
    assert abs(get_measure("cknna")(x, y)) < 0.1


# ---------------------------------------------------------------- the view: sharing, subsets, permutations


def test_subset_and_permuted_views_equal_fresh_views():
    """Indexing the parent's cached quantities gives exactly what a fresh view of those rows gives."""
    rng = np.random.default_rng(6)
    x, y = related_pair(rng, 60, 40, 30)
    vx, vy = View(x), View(y)
    for name in PAIRWISE:
        get_measure(name)(vx, vy)  # fill the parents' caches first, so the children index them
    idx = rng.choice(60, size=30, replace=False)
    perm = rng.permutation(60)
    for name in PAIRWISE:
        f = get_measure(name)
        assert abs(f(vx.subset(idx), vy.subset(idx)) - f(x[idx], y[idx])) < 1e-9, name
        assert abs(f(vx, vy.permute(perm)) - f(x, y[perm])) < 1e-9, name
    for name in SINGLE:
        assert abs(get_measure(name)(vx.subset(idx)) - get_measure(name)(x[idx])) < 1e-9, name
    with pytest.raises(ValueError):
        vx.subset([1, 1, 2])  # with replacement: refused
    with pytest.raises(ValueError):
        vx.permute(idx)


def test_view_shares_one_gram():
    rng = np.random.default_rng(7)
    x, y = related_pair(rng, 30, 50, 40)
    vx, vy = View(x), View(y)
    for name in PAIRWISE:
        get_measure(name)(vx, vy)
    assert vx.gram is vx.gram64  # small problems: one float64 Gram serves every measure
    grams = [k for k in vx._cache if k in ("gram", "gram64", "inner", "cosine", "pearson", "sq_dists")]
    assert sorted(grams) == ["cosine", "gram", "gram64", "inner", "pearson", "sq_dists"]


def test_standardize_zscores_columns():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((30, 6)) * [1, 2, 3, 4, 5, 100]
    x[:, 2] = 7.0  # constant feature stays 0
    z = standardize(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), [1, 1, 0, 1, 1, 1], atol=1e-12)
    zt = standardize(torch.from_numpy(np.stack([x, 2 * x])))
    np.testing.assert_allclose(zt.numpy(), np.stack([z, z]), atol=1e-12)


# ---------------------------------------------------------------- inputs: numpy, torch, CPU, CUDA


def test_torch_and_float32_inputs_agree():
    rng = np.random.default_rng(2)
    x, y = related_pair(rng, 40, 60, 30)
    x, y = x.astype(np.float32), y.astype(np.float32)
    for name in PAIRWISE:
        expected = get_measure(name)(x.astype(np.float64), y.astype(np.float64))
        for a, b in [(torch.from_numpy(x), torch.from_numpy(y)), (torch.from_numpy(x).double(), y)]:
            assert abs(get_measure(name)(a, b) - expected) < 1e-6, name
    for name in SINGLE:
        expected = get_measure(name)(x.astype(np.float64))
        assert abs(get_measure(name)(torch.from_numpy(x)) - expected) < 1e-6 * max(1, abs(expected)), name


def test_device_code_path_on_cpu_tensors(monkeypatch):
    """The CUDA branches (Grams and moments formed in torch where the tensor lives, n x n brought back)
    exercised on CPU tensors, so they are checked on machines without a GPU too."""
    import analysis.measures.arrays
    import analysis.measures.gram
    import analysis.measures.view

    rng = np.random.default_rng(12)
    x, y = related_pair(rng, 30, 50, 40)
    expected = {name: get_measure(name)(x, y) for name in PAIRWISE}
    expected_single = {name: get_measure(name)(x) for name in SINGLE}
    on_device = lambda a: isinstance(a, torch.Tensor)  # noqa: E731
    for module in (analysis.measures.arrays, analysis.measures.gram, analysis.measures.view):  # each looks it up
        monkeypatch.setattr(module, "is_cuda", on_device)
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    assert View(tx).on_device
    for name in PAIRWISE:
        assert abs(get_measure(name)(tx, ty) - expected[name]) < 1e-5, name
        vx, vy = View(tx), View(ty)
        idx = rng.choice(30, size=15, replace=False)
        assert abs(get_measure(name)(vx.subset(idx), vy.subset(idx)) - get_measure(name)(x[idx], y[idx])) < 1e-5, name
    for name in SINGLE:
        assert abs(get_measure(name)(tx) - expected_single[name]) < 1e-5 * max(1, abs(expected_single[name])), name


def test_resolve_checks_the_selection():
    from analysis.measures import resolve

    chosen = resolve(["linear_cka", ("mutual_knn", {"k": 5})], "pairwise")
    assert [(m.name, p) for m, p in chosen] == [("linear_cka", {}), ("mutual_knn", {"k": 5, "normalize": True})]
    with pytest.raises(ValueError):
        resolve(["linear_cka", "linear_cka"])
    with pytest.raises(ValueError):
        resolve(["pca99"], "pairwise")
    with pytest.raises(KeyError):
        resolve(["nope"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(4)
    x, y = related_pair(rng, 64, 300, 200)
    x, y = x.astype(np.float32), y.astype(np.float32)
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    for name in PAIRWISE:
        assert abs(get_measure(name)(tx, ty) - get_measure(name)(x, y)) < 1e-6, name
    for name in SINGLE:
        cpu = get_measure(name)(x)
        assert abs(get_measure(name)(tx) - cpu) < 1e-6 * max(1, abs(cpu)), name
