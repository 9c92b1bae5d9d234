"""Examples-proportional mixing with cap K: rate_t = min(e_t, K) / sum_u min(e_u, K)."""

from __future__ import annotations

from collections import Counter

import datasets
import pytest

from tasks import build_mixture, mixing_rates
from tasks.mixture import cap_train_sets, cluster_caps


def _ds(task: str, n: int, cluster: str = "c") -> datasets.Dataset:
    return datasets.Dataset.from_dict({"example_id": [f"{task}:train:{i:06d}" for i in range(n)],
                                       "task": [task] * n, "cluster": [cluster] * n})


def test_rates_match_the_formula():
    rates = mixing_rates({"a": 100, "b": 5000, "c": 3000, "d": 0}, cap=3000)
    assert rates == pytest.approx({"a": 100 / 6100, "b": 3000 / 6100, "c": 3000 / 6100, "d": 0.0})
    assert sum(rates.values()) == pytest.approx(1.0)
    assert mixing_rates({"a": 10, "b": 30}) == pytest.approx({"a": 0.25, "b": 0.75})  # below K: proportional
    assert mixing_rates({"a": 10, "b": 30}, cap=10) == pytest.approx({"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError):
        mixing_rates({"a": 0})


def test_mixture_counts_follow_the_rates():
    sets = {"a": _ds("a", 50), "b": _ds("b", 400), "c": _ds("c", 200)}
    mix = build_mixture(sets, cap=200, seed=3, total=900)
    counts = Counter(mix["task"])
    rates = mixing_rates({k: len(v) for k, v in sets.items()}, cap=200)
    assert len(mix) == 900
    for t, r in rates.items():
        assert abs(counts[t] - r * 900) <= 1
    # a small task wraps around: every example is used before any repeats
    assert len({i for i, t in zip(mix["example_id"], mix["task"]) if t == "a"}) == 50


def test_mixture_is_seeded():
    sets = {"a": _ds("a", 30), "b": _ds("b", 60)}
    one, two, other = (build_mixture(sets, seed=s)["example_id"] for s in (0, 0, 1))
    assert one == two and one != other and sorted(one) == sorted(other)
    assert len(one) == 90  # default total: the capped size


def test_per_dataset_and_per_cluster_caps():
    kept = cluster_caps({"a": 40000, "b": 20000, "c": 5000}, {"a": "x", "b": "x", "c": "y"},
                        per_dataset_cap=30000, per_cluster_cap=25000)
    assert kept["c"] == 5000
    assert kept["a"] + kept["b"] == 25000 and kept["a"] == 15000 and kept["b"] == 10000
    capped = cap_train_sets({"a": _ds("a", 80, "x"), "b": _ds("b", 40, "x")}, per_dataset_cap=60, per_cluster_cap=50)
    assert len(capped["a"]) + len(capped["b"]) == 50
    mix = build_mixture({"a": _ds("a", 80, "x"), "b": _ds("b", 40, "x")}, per_dataset_cap=60, per_cluster_cap=50)
    assert len(mix) == 50
