"""Neighbourhood measures (Huh et al., 2024, "The Platonic Representation Hypothesis").

Both follow the reference implementation (minyoungg/platonic-rep metrics.py): neighbours by inner
product, self excluded, and

    N_k^X(i)  = the k rows nearest to row i in X                 (one mask per view and k)
    mutual_knn = mean_i |N_k^X(i) ∩ N_k^Y(i)| / k
    cknna      = HSIC_u(M∘K, M∘L) / sqrt(HSIC_u(Mx∘K, Mx∘K) HSIC_u(My∘L, My∘L))
                 K, L the Grams; Mx_ij = [j ∈ N_k^X(i)]; M = Mx ∧ My (pairs neighbours in both);
                 HSIC_u is Song et al.'s (2012) unbiased HSIC, eq. 5, on these (non-symmetric) matrices.

Which rows: normalize=True (this project's default) L2-normalises them first, so K is the cosine Gram
and neighbours are by cosine, as platonic-rep's own pipeline (measure_alignment.py) feeds its metrics;
normalize=False takes the rows as given (K = X Xᵀ), as the metric itself does.

Standard ids: `mutual_knn-topk={k}` and `cknna-topk={k}` are the similarity-repository's, which calls
platonic-rep's AlignmentMetrics.mutual_knn / .cknna on the rows as given (its platonic/mutual_knn_topk
and platonic/cknna_topk): normalize=False, and cknna with the reference's 1e-6 in its denominator
(epsilon), so the id's value is the repository's. The normalised variant has no id there: this project
spells it `-l2norm`.

k is capped at n - 1. M∘K is not symmetric (i may be among j's neighbours but not j among i's), so
Song's cross term 1ᵀ(M∘K)(M∘L)1 and with it cknna(X, Y) differ slightly from cknna(Y, X), as in the
reference. Departure from the reference under this project's names (epsilon=0): the reference adds
1e-6 to cknna's denominator, whose HSIC terms scale like k/n on unit rows (the denominator is ~7e-3 at
n = 750, k = 10), so the epsilon shifts values by ~1e-4 relative, more at larger n, and breaks the
invariance to scale. Either way an undefined denominator (<= 0) gives nan.
"""

from __future__ import annotations

import numpy as np

from analysis.measures.gram import safe_ratio
from analysis.measures.registry import register
from analysis.measures.view import MATRIX, SAME, View, top_k_mask

PLATONIC = "minyoungg/platonic-rep metrics.py"
_NEIGHBOURS = ("normalize=True (default; id suffix -l2norm, this project's spelling): rows L2-normalised first, "
               "neighbours by cosine, as platonic-rep's measure_alignment.py normalises the rows before its metrics "
               "(it also clamps outliers at the 0.95 quantile of |x| first, prepare_features; this project does not); "
               "normalize=False (the standard id): the rows as given, neighbours by inner product, as the "
               "similarity-repository's platonic entry calls the metric. Self excluded, ties to the lower index, "
               "k capped at n - 1")


def _neighbours(view: View, k: int, normalize: bool) -> np.ndarray:
    """The k-NN mask: by cosine (view.knn), or by inner product on the rows as given."""
    if normalize:
        return view.knn(k)
    return view.cached(("knn_inner", k), lambda v: top_k_mask(v.inner, k), MATRIX)


def _kernel(view: View, normalize: bool) -> np.ndarray:
    return view.cosine if normalize else view.inner


def capped_k(k: int, n: int) -> int:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(int(k), n - 1)


@register(
    "mutual_knn", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Mutual k-NN: mean over examples of the shared fraction of their k cosine nearest neighbours",
    meaning="1 = every example has the same k neighbours in both; about k/(n-1) by chance",
    ids={"mutual_knn-topk={k}": {"normalize": False}, "mutual_knn-topk={k}-l2norm": {"normalize": True}},
    conventions={"neighbours": _NEIGHBOURS, "centring": "none (as the reference)",
                 "value": "mean over examples of |N_k^X(i) ∩ N_k^Y(i)| / k"},
    reference=f"{PLATONIC}: AlignmentMetrics.mutual_knn (the rows as given; -l2norm: on F.normalize'd rows, as "
              "measure_alignment.py calls it)",
)
def mutual_knn(x: View, y: View, *, k: int = 10, normalize: bool = True) -> float:
    if x.n < 2:
        return float("nan")
    k = capped_k(k, x.n)
    shared = np.count_nonzero(_neighbours(x, k, normalize) & _neighbours(y, k, normalize))  # Σ_i |N_k^X(i) ∩ N_k^Y(i)|
    return shared / (x.n * k)


def hsic_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, for zero-diagonal n x n a, b (not necessarily symmetric):
    [tr(ab) + 1ᵀa1 1ᵀb1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀab1] / (n(n-3)), in O(n²)."""
    n = a.shape[0]
    trace_ab = np.vdot(a, b.T)  # tr(ab) = Σ_ij a_ij b_ji
    sums = a.sum() * b.sum() / ((n - 1) * (n - 2))
    cross = a.sum(axis=0) @ b.sum(axis=1)  # 1ᵀ a b 1
    return float((trace_ab + sums - 2.0 * cross / (n - 2)) / (n * (n - 3)))


def _self_similarity(view: View, k: int, normalize: bool = True) -> float:
    """HSIC_u(Mx∘K, Mx∘K): cknna's normaliser, once per view (it is permutation-invariant)."""

    def compute(v: View) -> float:
        masked = np.where(_neighbours(v, k, normalize), _kernel(v, normalize), 0.0)
        return hsic_unbiased(masked, masked)

    return view.cached(("cknna_self", k) if normalize else ("cknna_self_inner", k), compute, SAME)


@register(
    "cknna", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="CKNNA: CKA (unbiased HSIC) restricted to pairs that are k-nearest neighbours in both (Huh et al., 2024)",
    meaning="1 = identical local (k-NN) kernel structure; ~0 for unrelated neighbourhoods",
    ids={"cknna-topk={k}": {"normalize": False, "epsilon": 1e-6}, "cknna-topk={k}-l2norm": {"normalize": True}},
    conventions={"neighbours": _NEIGHBOURS, "kernel": "the cosine Gram (normalize=False: X Xᵀ), masked to mutual neighbours",
                 "hsic": "Song et al. (2012) unbiased, eq. 5, on the masked (non-symmetric) kernels",
                 "denominator": "sqrt(HSIC_u(x, x) HSIC_u(y, y)) + epsilon: 0 by default (not scale invariant "
                                "otherwise), 1e-6 under the standard id cknna-topk={k}, as the reference; an "
                                "undefined one (<= 0) gives nan"},
    reference=f"{PLATONIC}: AlignmentMetrics.cknna(topk, unbiased=True) (the rows as given; -l2norm: on "
              "F.normalize'd rows, as measure_alignment.py calls it, without the 1e-6)",
)
def cknna(x: View, y: View, *, k: int = 10, normalize: bool = True, epsilon: float = 0.0) -> float:
    if k < 2:
        raise ValueError(f"cknna needs k >= 2 (as the reference), got {k}")
    if x.n < 4:  # unbiased HSIC needs n >= 4
        return float("nan")
    k = capped_k(k, x.n)
    both = _neighbours(x, k, normalize) & _neighbours(y, k, normalize)
    sim_xy = hsic_unbiased(np.where(both, _kernel(x, normalize), 0.0), np.where(both, _kernel(y, normalize), 0.0))
    denominator = _self_similarity(x, k, normalize) * _self_similarity(y, k, normalize)
    return safe_ratio(sim_xy, np.sqrt(denominator) + epsilon) if denominator > 0 else float("nan")
