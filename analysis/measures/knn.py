"""Neighbourhood measures (Huh et al., 2024, "The Platonic Representation Hypothesis").

Both use the rows L2-normalised and neighbours by inner product (cosine), self excluded, as the
reference implementation (minyoungg/platonic-rep, metrics.py and measure_alignment.py) does:

    N_k^X(i)  = the k rows nearest to row i in X                 (view.knn, one mask per view and k)
    mutual_knn = mean_i |N_k^X(i) ∩ N_k^Y(i)| / k
    cknna      = HSIC_u(M∘K, M∘L) / sqrt(HSIC_u(Mx∘K, Mx∘K) HSIC_u(My∘L, My∘L))
                 K, L cosine Grams; Mx_ij = [j ∈ N_k^X(i)]; M = Mx ∧ My (pairs neighbours in both);
                 HSIC_u is Song et al.'s (2012) unbiased HSIC, eq. 5, on these (non-symmetric) matrices.

k is capped at n - 1. M∘K is not symmetric (i may be among j's neighbours but not j among i's), so
Song's cross term 1ᵀ(M∘K)(M∘L)1 and with it cknna(X, Y) differ slightly from cknna(Y, X), as in the
reference. Departure from the reference: it adds 1e-6 to cknna's denominator, whose HSIC terms
scale like k/n (the denominator is ~7e-3 at n = 750, k = 10), so the epsilon shifts values by
~1e-4 relative, more at larger n, and breaks the invariance to scale; here an undefined
denominator (<= 0) gives nan instead.
"""

from __future__ import annotations

import numpy as np

from analysis.cka import safe_ratio
from analysis.measures.registry import register
from analysis.measures.view import SAME, View


def capped_k(k: int, n: int) -> int:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(int(k), n - 1)


@register(
    "mutual_knn", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Mutual k-NN: mean over examples of the shared fraction of their k cosine nearest neighbours",
    meaning="1 = every example has the same k neighbours in both; about k/(n-1) by chance",
)
def mutual_knn(x: View, y: View, *, k: int = 10) -> float:
    if x.n < 2:
        return float("nan")
    k = capped_k(k, x.n)
    shared = np.count_nonzero(x.knn(k) & y.knn(k))  # Σ_i |N_k^X(i) ∩ N_k^Y(i)|
    return shared / (x.n * k)


def hsic_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, for zero-diagonal n x n a, b (not necessarily symmetric):
    [tr(ab) + 1ᵀa1 1ᵀb1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀab1] / (n(n-3)), in O(n²)."""
    n = a.shape[0]
    trace_ab = np.vdot(a, b.T)  # tr(ab) = Σ_ij a_ij b_ji
    sums = a.sum() * b.sum() / ((n - 1) * (n - 2))
    cross = a.sum(axis=0) @ b.sum(axis=1)  # 1ᵀ a b 1
    return float((trace_ab + sums - 2.0 * cross / (n - 2)) / (n * (n - 3)))


def _self_similarity(view: View, k: int) -> float:
    """HSIC_u(Mx∘K, Mx∘K): cknna's normaliser, once per view (it is permutation-invariant)."""

    def compute(v: View) -> float:
        masked = np.where(v.knn(k), v.cosine, 0.0)
        return hsic_unbiased(masked, masked)

    return view.cached(("cknna_self", k), compute, SAME)


@register(
    "cknna", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="CKNNA: CKA (unbiased HSIC) restricted to pairs that are k-nearest neighbours in both (Huh et al., 2024)",
    meaning="1 = identical local (k-NN) kernel structure; ~0 for unrelated neighbourhoods",
)
def cknna(x: View, y: View, *, k: int = 10) -> float:
    if k < 2:
        raise ValueError(f"cknna needs k >= 2 (as the reference), got {k}")
    if x.n < 4:  # unbiased HSIC needs n >= 4
        return float("nan")
    k = capped_k(k, x.n)
    both = x.knn(k) & y.knn(k)
    sim_xy = hsic_unbiased(np.where(both, x.cosine, 0.0), np.where(both, y.cosine, 0.0))
    denominator = _self_similarity(x, k) * _self_similarity(y, k)
    return safe_ratio(sim_xy, np.sqrt(denominator)) if denominator > 0 else float("nan")
