"""The CKA measures as the pipeline runs them (registered measures on views, the frames' layer loop,
the cross-layer form; analysis.measures.gram's exact-and-fast Grams) vs a plain float64 reference
written straight from the formulas."""

import numpy as np
import polars as pl
import pytest
import torch

from analysis.frames.suite import pairwise_frame
from analysis.measures import View, get_measure, measure_info
from analysis.measures.gram import MIXED_MIN_WORK
from tests.references import ref_cka_of_grams as ref_cka
from tests.references import ref_linear_gram, ref_rbf_gram


def linear_cka(x, y, debiased=False, precision="auto"):
    """The registered linear CKA (debiased: Song's HSIC) on views of the given precision."""
    measure = get_measure("debiased_cka" if debiased else "linear_cka")
    return measure(View(x, precision), View(y, precision))


def rbf_cka(x, y, threshold=1.0, debiased=False):
    return get_measure("rbf_cka")(x, y, threshold=threshold, debiased=debiased)


def measure_for(kernel, debiased):
    """(registered name, params) of the CKA estimator with this kernel and HSIC."""
    if kernel == "linear":
        return ("debiased_cka" if debiased else "linear_cka"), {}
    return "rbf_cka", {"threshold": 1.0, "debiased": debiased}


def frame_values(reps, pairs, kernel, debiased):
    """{pair: values per layer} from the analyze stage's frame (one view per model and layer, shared by the pairs)."""
    frame = pairwise_frame("t", "c", reps, pairs, [measure_for(kernel, debiased)])
    return {(e, c): frame.filter((pl.col("experimental") == e) & (pl.col("control") == c)).sort("layer")["value"]
            .to_numpy() for e, c in pairs}


def cross_layer(xs, ys, kernel, debiased):
    name, params = measure_for(kernel, debiased)
    info = measure_info(name)
    return info.cross_layer(xs, ys, **info.resolve_params(params))



def related_pair(rng, n, d1, d2):
    x = rng.standard_normal((n, d1)) * rng.uniform(0.2, 3.0, size=d1) + rng.normal(0, 5, size=d1)
    y = np.tanh(x @ rng.standard_normal((d1, d2)) / np.sqrt(d1)) + 0.4 * rng.standard_normal((n, d2))
    return x, y


SHAPES = [(12, 5, 7), (40, 90, 60), (64, 300, 200), (300, 16, 24), (200, 50, 400)]

# ---------------------------------------------------------------- agreement with the reference


@pytest.mark.parametrize("n,d1,d2", SHAPES)
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_matches_reference(n, d1, d2, debiased):
    rng = np.random.default_rng(n * 7 + d1)
    x, y = related_pair(rng, n, d1, d2)
    expected = ref_cka(ref_linear_gram(x), ref_linear_gram(y), debiased)
    assert abs(linear_cka(x, y, debiased=debiased) - expected) < 1e-6


@pytest.mark.parametrize("n,d1,d2", SHAPES[:4])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_matches_reference(n, d1, d2, debiased, threshold):
    rng = np.random.default_rng(n + d2)
    x, y = related_pair(rng, n, d1, d2)
    expected = ref_cka(ref_rbf_gram(x, threshold), ref_rbf_gram(y, threshold), debiased)
    assert abs(rbf_cka(x, y, threshold=threshold, debiased=debiased) - expected) < 1e-6


@pytest.mark.parametrize("debiased", [False, True])
def test_unrelated_inputs_give_low_debiased_cka(debiased):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((200, 50)), rng.standard_normal((200, 50))
    value = linear_cka(x, y, debiased=debiased)
    assert abs(value - ref_cka(ref_linear_gram(x), ref_linear_gram(y), debiased)) < 1e-6
    if debiased:  # the point of the debiased estimator: ~0 for independent data even with n ~ d
        assert abs(value) < 0.05
    else:
        assert value > 0.1


@pytest.mark.parametrize("debiased", [False, True])
def test_mixed_precision_gram_meets_1e6(debiased):
    """Large problems take the float32-syrk path ('auto' with n²d >= 2^30, or forced): still 1e-6."""
    rng = np.random.default_rng(11)
    n, d = 300, 12000
    base = rng.standard_normal((n, 40)).astype(np.float32)
    x = (base @ rng.standard_normal((40, d)).astype(np.float32) + rng.standard_normal((n, d), dtype=np.float32) + 100)
    x[:, :3] *= 200.0  # outlier dimensions, as in LLM activations
    y = base @ rng.standard_normal((40, d)).astype(np.float32) + 2.0 * rng.standard_normal((n, d), dtype=np.float32)
    assert n * n * d >= MIXED_MIN_WORK  # this case exercises the float32 path under precision='auto'
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    x64c, y64c = x64 - x64.mean(0), y64 - y64.mean(0)  # exact algebra; keeps the reference itself accurate
    expected = ref_cka(ref_linear_gram(x64c), ref_linear_gram(y64c), debiased)
    assert abs(linear_cka(x, y, debiased=debiased) - expected) < 1e-6
    small = rng.standard_normal((50, 80)), rng.standard_normal((50, 80))
    forced = linear_cka(*small, debiased=debiased, precision="mixed")
    assert abs(forced - ref_cka(ref_linear_gram(small[0]), ref_linear_gram(small[1]), debiased)) < 1e-6


def test_extreme_magnitudes():
    rng = np.random.default_rng(5)
    x, y = related_pair(rng, 50, 30, 20)
    expected = ref_cka(ref_linear_gram(x), ref_linear_gram(y), False)
    assert abs(linear_cka(x * 1e-30, y * 1e30) - expected) < 1e-6
    assert abs(linear_cka(x * 1e-30, y * 1e30, precision="mixed") - expected) < 1e-6


# ---------------------------------------------------------------- invariances


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,d", [(60, 25), (30, 80)])
def test_invariant_to_orthogonal_transform_scaling_and_shift(kernel, debiased, n, d):
    rng = np.random.default_rng(n + d)
    x, y = related_pair(rng, n, d, d)
    f = (lambda a, b: linear_cka(a, b, debiased)) if kernel == "linear" else (lambda a, b: rbf_cka(a, b, 1.0, debiased))
    base = f(x, y)
    q1, q2 = random_orthogonal(rng, d), random_orthogonal(rng, d)
    assert abs(f(x @ q1, y @ q2) - base) < 1e-9
    assert abs(f(3.7 * x, 0.02 * y) - base) < 1e-9
    assert abs(f(x + 11.0, y - 4.0) - base) < 1e-9
    assert abs(f(x @ q1 * 1e3, y) - base) < 1e-9
    # and it is not invariant to a non-isotropic rescale (so the checks above can fail)
    assert abs(f(x * np.linspace(0.01, 10, d), y) - base) > 1e-4


def test_identity_and_symmetry():
    rng = np.random.default_rng(0)
    x, y = related_pair(rng, 30, 10, 12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-14)


# ---------------------------------------------------------------- inputs


def test_numpy_float32_and_torch_inputs_agree():
    rng = np.random.default_rng(2)
    x, y = related_pair(rng, 40, 60, 30)
    x, y = x.astype(np.float32), y.astype(np.float32)
    expected = ref_cka(ref_linear_gram(x), ref_linear_gram(y), True)
    for a, b in [(x, y), (torch.from_numpy(x), torch.from_numpy(y)), (torch.from_numpy(x).double(), y)]:
        value = linear_cka(a, b, debiased=True)
        assert isinstance(value, float)
        assert abs(value - expected) < 1e-6
    bf = torch.from_numpy(x).to(torch.bfloat16)
    expected_bf = ref_cka(ref_linear_gram(bf.double().numpy()), ref_linear_gram(y), False)
    assert abs(linear_cka(bf, y) - expected_bf) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(4)
    x, y = related_pair(rng, 64, 300, 200)
    tx, ty = torch.from_numpy(x).float().cuda(), torch.from_numpy(y).float().cuda()
    for debiased in (False, True):
        assert abs(linear_cka(tx, ty, debiased) - linear_cka(x.astype(np.float32), y.astype(np.float32), debiased)) < 1e-6
        assert abs(rbf_cka(tx, ty, 1.0, debiased) - rbf_cka(x.astype(np.float32), y.astype(np.float32), 1.0, debiased)) < 1e-6
    xs = torch.stack([tx, tx * 2, tx + 1])
    ys = torch.stack([ty, ty, tx])
    per_layer = frame_values({"x": xs, "y": ys}, [("x", "y")], "linear", False)[("x", "y")]
    np.testing.assert_allclose(per_layer, [linear_cka(a, b) for a, b in zip(xs, ys)], atol=1e-9)


def test_rejects_misaligned_rows():
    with pytest.raises(ValueError):
        linear_cka(np.zeros((10, 3)), np.zeros((11, 3)))
    with pytest.raises(ValueError):
        rbf_cka(np.zeros((10, 3)), np.zeros((10, 3, 1)))


# ---------------------------------------------------------------- batched: the frames' layer loop, cross-layer


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,d", [(30, 70), (120, 10)])
def test_batched_engine_matches_single_pairs(kernel, debiased, n, d):
    rng = np.random.default_rng(9)
    n_layers = 4
    control = rng.standard_normal((n_layers, n, d))
    reps = {
        "control": control,
        "pretrained": control + rng.standard_normal((n_layers, n, d)),
        "multitask": np.tanh(control) + 0.3 * rng.standard_normal((n_layers, n, d)),
    }
    single = (lambda a, b: linear_cka(a, b, debiased)) if kernel == "linear" else (lambda a, b: rbf_cka(a, b, 1.0, debiased))
    pairs = [("pretrained", "control"), ("multitask", "control")]
    out = frame_values(reps, pairs, kernel, debiased)
    for a, b in pairs:
        expected = [single(reps[a][l], reps[b][l]) for l in range(n_layers)]
        np.testing.assert_allclose(out[(a, b)], expected, atol=1e-10)
    lw = frame_values(reps, [("multitask", "control")], kernel, debiased)[("multitask", "control")]
    np.testing.assert_allclose(lw, out[("multitask", "control")], atol=1e-12)
    cross = cross_layer(reps["multitask"], reps["control"][:3], kernel, debiased)
    assert cross.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert abs(cross[i, j] - single(reps["multitask"][i], reps["control"][j])) < 1e-10
