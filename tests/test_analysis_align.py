"""align_and_mask: inner join by id, one joint non-finite mask, honest drop count."""

import numpy as np
import pytest
import torch

from analysis.frames.align import align_and_mask


def encoded(ids, n_layers=3, d=4, offset=0.0):
    """Array whose row for id 'e<k>' holds k (+ layer/feature offsets): alignment is checkable."""
    k = np.array([int(i[1:]) for i in ids], dtype=np.float64)
    return k[None, :, None] + offset + np.arange(n_layers)[:, None, None] * 1000 + np.arange(d)[None, None, :] * 0.001


def test_shuffled_ids_are_aligned_and_sorted():
    rng = np.random.default_rng(0)
    ids = [f"e{k}" for k in range(20)]
    order_a, order_b = rng.permutation(20), rng.permutation(20)
    ids_a, ids_b = [ids[i] for i in order_a], [ids[i] for i in order_b]
    kept, arrays, dropped = align_and_mask({"a": (ids_a, encoded(ids_a)), "b": (ids_b, encoded(ids_b, offset=0.5))})
    assert kept == sorted(ids)
    assert dropped == 0
    np.testing.assert_array_equal(arrays["a"] + 0.5, arrays["b"])  # row i of a and b: same example
    np.testing.assert_array_equal(arrays["a"][0, :, 0], [int(e[1:]) for e in kept])


def test_inner_join_and_joint_mask():
    ids_a = [f"e{k}" for k in range(10)]
    ids_b = [f"e{k}" for k in range(3, 13)][::-1]  # overlap e3..e9, reversed
    ids_c = [f"e{k}" for k in range(12)]
    a, b, c = encoded(ids_a), encoded(ids_b), encoded(ids_c, n_layers=2, d=6)
    a[2, ids_a.index("e4"), 1] = np.nan  # last layer of a
    b[0, ids_b.index("e7"), 3] = np.inf  # first layer of b
    c[1, ids_c.index("e1"), 0] = np.nan  # e1 is not in the join anyway: not counted
    kept, arrays, dropped = align_and_mask({"a": (ids_a, a), "b": (ids_b, b), "c": (ids_c, c)})
    assert kept == ["e3", "e5", "e6", "e8", "e9"]
    assert dropped == 2
    for name, arr in arrays.items():
        assert arr.shape[1] == len(kept)
        assert np.isfinite(arr).all(), name
        np.testing.assert_array_equal(arr[0, :, 0], [3, 5, 6, 8, 9])
    assert arrays["c"].shape == (2, 5, 6)


def test_per_model_dropping_would_misalign():
    """The bug this module exists to avoid: a NaN row in one model only must drop that example in all."""
    ids = [f"e{k}" for k in range(6)]
    a, b = encoded(ids), encoded(ids)
    a[1, 2, 0] = np.nan
    kept, arrays, dropped = align_and_mask({"a": (ids, a), "b": (ids, b)})
    assert "e2" not in kept and dropped == 1
    np.testing.assert_array_equal(arrays["a"], arrays["b"])


def test_torch_bf16_and_duplicate_ids():
    ids = ["x", "y", "z", "w"]
    t = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3).to(torch.bfloat16)
    kept, arrays, dropped = align_and_mask({"m": (ids, t)})
    assert kept == ["w", "x", "y", "z"] and dropped == 0
    np.testing.assert_array_equal(arrays["m"][:, 0], t.float().numpy()[:, 3])
    with pytest.raises(ValueError):
        align_and_mask({"m": (["x", "x"], np.zeros((1, 2, 3)))})
    with pytest.raises(ValueError):
        align_and_mask({"m": (["x", "y"], np.zeros((1, 3, 3)))})
