"""Standard measure ids (the similarity-repository convention): each resolves to a registered measure
with the id's parameters, and its value equals the original implementation's (tests/references.py);
the records carry ids, conventions and references; `layerwise measures` lists them."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.measures import describe, get_measure, list_measures, measure_info
from analysis.measures.ids import example_ids, id_params
from tests.references import (
    ref_cknna,
    ref_debiased_cka,
    ref_google_pwcca,
    ref_google_svcca,
    ref_linear_cka,
    ref_mutual_knn,
    ref_pca_scores,
    ref_platonic_cknna,
    ref_platonic_mutual_knn,
    ref_procrustes,
    ref_pwcca,
    ref_rbf_cka,
    ref_rbf_cka_sigma,
    ref_rsa,
)


def uncentred_pair(seed: int, n: int, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """y a noisy nonlinear read-out of x's latent factors; both with per-neuron offsets and scales, and
    distances of order 1 (so an absolute RBF bandwidth of 1 sees structure, not K = I)."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 5))
    x = latent @ rng.standard_normal((5, dx)) + 0.5 * rng.standard_normal((n, dx))
    y = np.sin(latent @ rng.standard_normal((5, dy))) + 0.4 * rng.standard_normal((n, dy))
    x = x * rng.uniform(0.5, 2.0, dx) / np.sqrt(dx) + rng.normal(0, 3, dx)
    y = y * rng.uniform(0.5, 2.0, dy) / np.sqrt(dy) + rng.normal(0, 3, dy)
    return x, y


def pca99(x: np.ndarray) -> np.ndarray:
    return ref_pca_scores(x, 0.99)


# id -> the original implementation's value on (x, y)
ORIGINALS = {
    "cka-kernel=linear-hsic=gretton-score": ref_linear_cka,
    "cka-kernel=linear-hsic=song-score": ref_debiased_cka,
    "cka-kernel=(rbf-sigma=1)-hsic=gretton-score": lambda x, y: ref_rbf_cka_sigma(x, y, 1.0),
    "cka-kernel=(rbf-sigma=0.7)-hsic=song-score": lambda x, y: ref_rbf_cka_sigma(x, y, 0.7, debiased=True),
    "cka-kernel=(rbf-sigma=median)-hsic=gretton-score": lambda x, y: ref_rbf_cka(x, y, 1.0),
    "cka-kernel=(rbf-sigma=median)-hsic=song-score": lambda x, y: ref_rbf_cka(x, y, 1.0, debiased=True),
    "cka-kernel=(rbf-threshold=0.5)-hsic=song-score": lambda x, y: ref_rbf_cka(x, y, 0.5, debiased=True),
    "cka-kernel=(rbf-threshold=2)-hsic=gretton-score": lambda x, y: ref_rbf_cka(x, y, 2.0),
    "svcca-var=0.99-score": ref_google_svcca,
    "svcca-var=0.95-score": lambda x, y: ref_google_svcca(x, y, 0.95),
    "procrustes-score": ref_procrustes,
    "rsa-rdm=correlation-compare=spearman": ref_rsa,
    # the similarity-repository's platonic entries: platonic-rep's metrics on the rows as given
    "mutual_knn-topk=10": lambda x, y: ref_platonic_mutual_knn(x, y, 10),
    "mutual_knn-topk=4": lambda x, y: ref_platonic_mutual_knn(x, y, 4),
    "cknna-topk=10": lambda x, y: ref_platonic_cknna(x, y, 10),
    "cknna-topk=5": lambda x, y: ref_platonic_cknna(x, y, 5),
    # this project's spelling: the same metrics on L2-normalised rows (without cknna's 1e-6)
    "mutual_knn-topk=10-l2norm": lambda x, y: ref_mutual_knn(x, y, 10),
    "cknna-topk=10-l2norm": lambda x, y: ref_cknna(x, y, 10),
    "pwcca-score": ref_google_pwcca,
    "pwcca-var=0.99-score": lambda x, y: ref_google_pwcca(pca99(x), pca99(y)),
    "pwcca-var=0.99-whitened-centered-score": ref_pwcca,
    "pwcca-whitened-centered-score": lambda x, y: ref_pwcca(x, y, threshold=1.0),  # every component kept
}
# (n, dx, dy): x with more neurons, then fewer (google/svcca's pwcca takes the side with fewer; PR #9's case)
SHAPES = [(90, 14, 9), (90, 9, 14), (60, 20, 20)]


@pytest.mark.parametrize("n,dx,dy", SHAPES)
@pytest.mark.parametrize("standard_id", list(ORIGINALS))
def test_standard_id_matches_the_original(standard_id, n, dx, dy):
    x, y = uncentred_pair(7919 + n + 3 * dx + dy, n, dx, dy)
    measure = get_measure(standard_id)
    value = measure(x, y)
    assert isinstance(value, float) and np.isfinite(value)
    assert abs(value - ORIGINALS[standard_id](x, y)) < 1e-6, standard_id
    assert measure.standard_id == standard_id and measure.kind == "pairwise"
    assert measure.name in list_measures("pairwise")


def test_every_accepted_id_is_checked_against_the_original():
    """Each id template a measure accepts has at least one instance in ORIGINALS, so no id escapes the check."""
    unchecked = [template for name in list_measures() for template in measure_info(name).ids
                 if not any(id_params(_only(measure_info(name), template), example) is not None for example in ORIGINALS)]
    assert not unchecked, f"standard ids with no check against the original implementation: {unchecked}"


def _only(measure, template):
    """The registration restricted to one of its id templates."""
    import dataclasses

    return dataclasses.replace(measure, ids={template: measure.ids[template]})


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("unit_rows", [False, True])
def test_platonic_ids_are_the_metric_on_the_rows_as_given(scale, unit_rows):
    """mutual_knn-topk=k and cknna-topk=k equal platonic-rep's metrics on whatever rows they are given, at any
    scale (cknna's 1e-6 included, which is why the scale matters), unit-norm rows (what platonic-rep's own
    pipeline passes) included; the -l2norm ids equal them on the normalised rows without the 1e-6."""
    x, y = uncentred_pair(101, 80, 12, 9)
    if unit_rows:
        x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    x, y = scale * x, scale * y
    for k in (2, 10):
        assert abs(get_measure(f"mutual_knn-topk={k}")(x, y) - ref_platonic_mutual_knn(x, y, k)) < 1e-12  # the same sets
        expected = ref_platonic_cknna(x, y, k)
        assert abs(get_measure(f"cknna-topk={k}")(x, y) - expected) < 1e-9 * max(1.0, abs(expected))
        assert abs(get_measure(f"mutual_knn-topk={k}-l2norm")(x, y) - ref_mutual_knn(x, y, k)) < 1e-12
        assert abs(get_measure(f"cknna-topk={k}-l2norm")(x, y) - ref_cknna(x, y, k)) < 1e-9


@pytest.mark.parametrize("standard_id,name,params", [
    ("cka-kernel=linear-hsic=gretton-score", "linear_cka", {}),
    ("cka-kernel=linear-hsic=song-score", "debiased_cka", {}),
    ("cka-kernel=(rbf-sigma=1)-hsic=gretton-score", "rbf_cka", {"sigma": 1.0, "debiased": False}),
    ("cka-kernel=(rbf-sigma=2.5e-1)-hsic=song-score", "rbf_cka", {"sigma": 0.25, "debiased": True}),
    ("cka-kernel=(rbf-sigma=median)-hsic=gretton-score", "rbf_cka", {"sigma": None, "threshold": 1.0}),
    ("svcca-var=0.99-score", "svcca", {"threshold": 0.99}),
    ("procrustes-score", "procrustes", {}),
    ("rsa-rdm=correlation-compare=spearman", "rsa", {}),
    ("mutual_knn-topk=10", "mutual_knn", {"k": 10, "normalize": False}),
    ("cknna-topk=10", "cknna", {"k": 10, "normalize": False, "epsilon": 1e-6}),
    ("mutual_knn-topk=10-l2norm", "mutual_knn", {"k": 10, "normalize": True}),
    ("cknna-topk=10-l2norm", "cknna", {"k": 10, "normalize": True, "epsilon": 0.0}),
    ("pwcca-score", "pwcca", {"threshold": None, "convention": "google_svcca"}),
    ("pwcca-var=0.9-whitened-centered-score", "pwcca", {"threshold": 0.9, "convention": "whitened"}),
])
def test_an_id_binds_its_measure_and_parameters(standard_id, name, params):
    bound = measure_info(standard_id)
    assert bound.name == name
    assert {k: bound.params[k] for k in params} == params
    assert isinstance(bound.params.get("k", 0), int)  # topk=10 is an int, as the parameter
    assert measure_info(name).standard_id == ""  # binding does not touch the registration
    x, y = uncentred_pair(31, 40, 6, 5)
    assert get_measure(standard_id)(x, y) == get_measure(name)(x, y, **params)


def test_call_time_parameters_still_override_an_id():
    x, y = uncentred_pair(5, 50, 8, 7)
    assert get_measure("mutual_knn-topk=10")(x, y, k=3) == get_measure("mutual_knn")(x, y, k=3, normalize=False)
    assert get_measure("mutual_knn-topk=3")(x, y) != get_measure("mutual_knn-topk=10")(x, y)


def test_a_selection_may_name_ids_but_each_measure_once():
    from analysis.measures import resolve

    chosen = resolve(["pwcca-score", ("cka-kernel=(rbf-sigma=2)-hsic=gretton-score", {"debiased": True})], "pairwise")
    assert [(m.name, p) for m, p in chosen] == [
        ("pwcca", {"threshold": None, "convention": "google_svcca"}),
        ("rbf_cka", {"threshold": 1.0, "debiased": True, "sigma": 2.0})]
    with pytest.raises(ValueError):
        resolve(["pwcca", "pwcca-score"])  # one measure, two settings: its rows would mix


def test_default_conventions_are_unchanged():
    """The registered defaults (what existing frames hold) are still the project's conventions."""
    x, y = uncentred_pair(11, 70, 12, 8)
    assert measure_info("rbf_cka").params["sigma"] is None
    assert abs(get_measure("rbf_cka")(x, y) - ref_rbf_cka(x, y)) < 1e-9
    assert measure_info("pwcca").params == {"threshold": 0.99, "convention": "whitened"}
    assert abs(get_measure("pwcca")(x, y) - ref_pwcca(x, y)) < 1e-9
    # and the options are real differences, so the ids that name them say something
    assert abs(get_measure("rbf_cka")(x, y, sigma=1.0) - get_measure("rbf_cka")(x, y)) > 1e-3
    assert abs(get_measure("pwcca-score")(x, y) - get_measure("pwcca")(x, y)) > 1e-4
    assert measure_info("mutual_knn").params["normalize"] and measure_info("cknna").params["epsilon"] == 0.0
    assert get_measure("mutual_knn-topk=10-l2norm")(x, y) == get_measure("mutual_knn")(x, y)
    assert get_measure("cknna-topk=10-l2norm")(x, y) == get_measure("cknna")(x, y)
    assert get_measure("mutual_knn-topk=10")(x, y) != get_measure("mutual_knn")(x, y)
    # with unit-norm rows, cosine and inner-product neighbours are the same
    xn, yn = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    assert abs(get_measure("cknna")(xn, yn, normalize=False) - get_measure("cknna")(x, y)) < 1e-9
    # and there the standard id differs from it by the reference's 1e-6 alone
    assert abs(get_measure("cknna-topk=10")(xn, yn, epsilon=0.0) - get_measure("cknna")(x, y)) < 1e-9
    assert abs(get_measure("cknna-topk=10")(xn, yn) - get_measure("cknna")(x, y)) > 1e-7


def test_google_pwcca_fails_where_the_original_does():
    """More neurons than examples: the original asserts; here nan. A singular covariance: nan too."""
    x, y = uncentred_pair(13, 30, 40, 8)
    with pytest.raises(AssertionError):
        ref_google_pwcca(x, y)
    assert np.isnan(get_measure("pwcca-score")(x, y))
    assert np.isnan(get_measure("pwcca-score")(y, x))
    assert np.isfinite(get_measure("pwcca-var=0.99-score")(x, y))  # after the PCA step it is defined
    with pytest.raises(ValueError):
        get_measure("pwcca")(x, y, convention="nope")


def test_rbf_sigma_cross_layer_matches_pairs():
    rng = np.random.default_rng(17)
    xs, ys = rng.standard_normal((3, 25, 6)) * 0.4, rng.standard_normal((2, 25, 5)) * 0.4
    ys[0] = np.tanh(xs[1][:, :5]) + 0.1 * ys[0]
    info = measure_info("cka-kernel=(rbf-sigma=0.8)-hsic=song-score")
    mat = info.cross_layer(xs, ys, **info.resolve_params())
    expected = [[info(a, b) for b in ys] for a in xs]
    np.testing.assert_allclose(mat, expected, atol=1e-10)
    with pytest.raises(ValueError):
        get_measure("rbf_cka")(xs[0], ys[0], sigma=0.0)


def test_unknown_ids_fail_in_one_line_with_the_closest_match():
    with pytest.raises(KeyError) as err:
        get_measure("cka-kernel=linear-hsic=gretonn-score")
    message = str(err.value)
    assert "\n" not in message and "did you mean 'cka-kernel=linear-hsic=gretton-score'" in message.lower()
    with pytest.raises(KeyError) as err:
        get_measure("mutual_knn-topk=2.5")  # k is a whole number
    assert "\n" not in str(err.value) and "whole number" in str(err.value)
    with pytest.raises(KeyError):
        get_measure("cka-kernel=(laplace-sigma=1)-hsic=gretton-score")  # a kernel this project does not implement


def test_every_measure_has_a_record():
    for name in list_measures():
        info = measure_info(name)
        assert info.conventions and info.reference, name
        if info.kind == "pairwise":
            assert info.ids, f"{name}: a pairwise measure has at least one standard id"
        for template, example in zip(info.ids, example_ids(info)):
            if "{" in example:  # a placeholder without a default (rbf sigma): fill one in
                example = example.replace("{sigma}", "1")
            assert measure_info(example).name == name, template


def test_cli_lists_every_measure_with_its_ids(capsys):
    from runner.cli import main

    assert main(["measures"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == describe().strip()
    blocks = out.strip().split("\n\n")
    assert len(blocks) == len(list_measures())
    for block, name in zip(blocks, list_measures()):
        assert block.startswith(f"{name}  ("), block[:40]
        assert "conventions:" in block and "follows:" in block
        for template in measure_info(name).ids:
            assert template in block
    assert main(["measures", "pwcca-score"]) == 0
    assert "as pwcca-score" in capsys.readouterr().out
    assert main(["measures", "no_such_measure"]) == 2
