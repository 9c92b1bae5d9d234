"""One (model, layer) matrix X (n x d) and the quantities measures share, each computed once.

A measure never forms a Gram matrix itself; it asks the view. So on one layer, linear CKA, PCA,
Procrustes, k-NN and RSA share one GEMM, and every pair that involves the model reuses it.

    gram       K  = Xc Xcᵀ                 Xc = column-centred X (float32 GEMM at scale: analysis.measures.gram)
    gram64     the same, always float64     (distances, spectra, cosines: nothing but CKA takes float32)
    inner      G  = X Xᵀ = K + a1ᵀ + 1aᵀ + |μ|²,  a = Xc μ, μ = column means  (no second GEMM)
    cosine     G_ij / (|x_i| |x_j|)         (rows L2-normalised; a zero row has cosine 0)
    pearson    corr(x_i, x_j) over features = R_ij / sqrt(R_ii R_jj),  R = G - s sᵀ / d, s = row sums
    sq_dists   D²_ij = K_ii + K_jj - 2 K_ij
    centered_gram(debiased), spectrum, basis (PCA), knn(k)   derived from the above

Resampling without new GEMMs (what makes a generic bootstrap and permutation null cheap):
  * view.subset(idx), a bootstrap half-sample: per-example quantities (the Grams, cosines,
    correlations, distances) are indexed from the parent; whatever depends on the whole sample
    (centring, spectra, neighbour sets, ranks) is recomputed on the subset, as for a fresh sample.
  * view.permute(perm), the permutation null: every quantity follows the permutation (centring,
    spectra, neighbour sets and ranks are permutation-equivariant), so nothing is recomputed.

Measure modules add their own per-view quantities with view.cached(key, compute, follow).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from analysis.measures.arrays import ArrayLike, as_numpy64, as_numpy_float, centered_features, check_2d, is_cuda
from analysis.measures.gram import Precision, center_gram, linear_gram, mixed_linear_gram, uses_mixed_precision

T = TypeVar("T")
# How a cached quantity follows a row index (subset or permutation): value, idx -> value.
Follow = Callable[[Any, np.ndarray], Any]


def _take_rows(a: Any, idx: np.ndarray) -> Any:
    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(idx, device=a.device)]
    return a[idx]


def MATRIX(a: np.ndarray, idx: np.ndarray) -> np.ndarray:  # noqa: N802 - a constant-like rule
    """n x n, rows and columns both indexed by examples."""
    return a[np.ix_(idx, idx)]


ROWS: Follow = _take_rows  # n x k, rows indexed by examples


def SAME(a: T, idx: np.ndarray) -> T:  # noqa: N802
    """Invariant under a permutation of the examples (spectra, norms, counts)."""
    return a


def _basis_follow(basis: tuple[np.ndarray, np.ndarray], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return basis[0], basis[1][idx]


class View:
    """Lazily cached quantities of one n x d matrix (numpy or torch, CPU or CUDA), float64."""

    def __init__(self, x: ArrayLike, precision: Precision = "auto") -> None:
        check_2d(x)
        self.precision: Precision = precision
        self.n, self.d = int(x.shape[0]), int(x.shape[1])
        self.on_device = is_cuda(x)
        self._parent: View | None = None
        self._idx: np.ndarray | None = None
        self._permuted = False
        self._cache: dict[Hashable, Any] = {"x": x}

    # ------------------------------------------------------------ resampling

    def _child(self, idx: np.ndarray, permuted: bool) -> View:
        child = object.__new__(View)
        child.precision, child.d, child.on_device = self.precision, self.d, self.on_device
        child.n, child._parent, child._idx, child._permuted, child._cache = len(idx), self, idx, permuted, {}
        return child

    def subset(self, idx: np.ndarray | Sequence[int]) -> View:
        """The view of rows `idx` (distinct), sharing this view's per-example quantities."""
        idx = np.asarray(idx, dtype=np.intp)
        if idx.ndim != 1 or len(np.unique(idx)) != len(idx) or (len(idx) and (idx.min() < 0 or idx.max() >= self.n)):
            raise ValueError("subset needs distinct row indices in [0, n): resampling with replacement "
                             "duplicates examples, which inflates every similarity (see analysis.frames.suite)")
        return self._child(idx, permuted=False)

    def permute(self, perm: np.ndarray | Sequence[int]) -> View:
        """The view with rows reordered by `perm`; every cached quantity is permuted, not recomputed."""
        perm = np.asarray(perm, dtype=np.intp)
        if perm.shape != (self.n,) or not np.array_equal(np.sort(perm), np.arange(self.n)):
            raise ValueError(f"permute needs a permutation of range({self.n})")
        return self._child(perm, permuted=True)

    def cached(self, key: Hashable, compute: Callable[[View], T], follow: Follow | None = None,
               indexable: bool = False) -> T:
        """compute(self), once. `follow` says how the value moves under a permutation of the rows (MATRIX,
        ROWS, SAME or a function; None, the safe default, recomputes it); `indexable` says a row subset may
        index the parent's value instead of recomputing it (true for per-example quantities: a Gram entry
        depends on two examples only)."""
        if key not in self._cache:
            parent = self._parent
            if parent is not None and follow is not None and (self._permuted or indexable):
                self._cache[key] = follow(parent.cached(key, compute, follow, indexable), self._idx)
            else:
                self._cache[key] = compute(self)
        return self._cache[key]

    # ------------------------------------------------------------ features

    @property
    def x(self) -> ArrayLike:
        """The matrix as given (numpy or torch, on its device)."""
        return self.cached("x", _given, ROWS, indexable=True)

    @property
    def features(self) -> np.ndarray:
        """Column-centred X, float64 numpy on the CPU."""
        return self.cached("features", lambda v: as_numpy64(centered_features(v.x)), ROWS)

    @property
    def has_variance(self) -> bool:
        """False when every row is the same point (similarity is then undefined, not 0 or 1). Read off
        the matrix itself, exactly: a Gram of identical rows need not be exactly constant (BLAS sums
        blocks in different orders), so its centred norm can be 1e-20 instead of 0. A subset keeps
        its parent's answer (half of a varying sample is constant only with duplicated rows)."""
        return self.cached("has_variance", _has_variance, SAME, indexable=True)

    @property
    def total_variance(self) -> float:
        """||Xc||²_F = tr(Kc), the total scatter of the rows."""
        return self.cached("total_variance", lambda v: float(np.trace(center_gram(v.gram64))), SAME)

    # ------------------------------------------------------------ Gram matrices (per example: indexable)

    @property
    def gram(self) -> np.ndarray:
        """Xc Xcᵀ as analysis.measures.gram forms it (float32 GEMM with float64 sums for large CPU inputs).
        On a subset it is the parent's, indexed: a Gram of shifted features, so centre before use."""
        return self.cached("gram", _gram, MATRIX, indexable=True)

    @property
    def gram64(self) -> np.ndarray:
        """Xc Xcᵀ in float64 throughout (the same array as `gram` when that is already float64)."""
        return self.cached("gram64", _gram64, MATRIX, indexable=True)

    @property
    def inner(self) -> np.ndarray:
        """G = X Xᵀ of the uncentred rows, from the centred Gram: G = K + a1ᵀ + 1aᵀ + |μ|²."""
        return self.cached("inner", _inner, MATRIX, indexable=True)

    @property
    def cosine(self) -> np.ndarray:
        """Cosine similarity of the rows (the Gram of the L2-normalised rows); a zero row gives 0."""
        return self.cached("cosine", _cosine, MATRIX, indexable=True)

    @property
    def pearson(self) -> np.ndarray:
        """Pearson correlation between rows (each row centred over its own features); nan for a
        constant row."""
        return self.cached("pearson", _pearson, MATRIX, indexable=True)

    @property
    def sq_dists(self) -> np.ndarray:
        """Squared Euclidean distances between rows, D²_ij = K_ii + K_jj - 2 K_ij (>= 0)."""
        return self.cached("sq_dists", _sq_dists, MATRIX, indexable=True)

    # ------------------------------------------------------------ derived (recomputed on a subset)

    def centered_gram(self, debiased: bool = False) -> np.ndarray:
        """HKH, or the U-centred K (debiased): analysis.measures.gram.center_gram of `gram`."""
        return self.cached(("centered_gram", debiased), lambda v: center_gram(v.gram, debiased), MATRIX)

    def centered_norm(self, debiased: bool = False) -> float:
        """||centred K||_F."""
        return self.cached(("centered_norm", debiased), lambda v: float(np.linalg.norm(v.centered_gram(debiased))),
                           SAME)

    @property
    def spectrum(self) -> np.ndarray:
        """Eigenvalues of the centred scatter matrix, descending, clipped at 0 (length min(n, d))."""
        return self.cached("spectrum", _spectrum, SAME)

    @property
    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigenvalues λ as in `spectrum`, U): U's r columns are the orthonormal principal directions in
        example space (left singular vectors of Xc) with λ above round-off, r = numerical rank; the
        principal component scores are U sqrt(λ[:r])."""
        return self.cached(("basis",), _basis, _basis_follow)

    def knn(self, k: int) -> np.ndarray:
        """Boolean n x n mask of each row's k nearest neighbours by cosine similarity, self excluded
        (ties go to the lower index, so exactly k per row)."""
        return self.cached(("knn", k), lambda v: top_k_mask(v.cosine, k), MATRIX)


# ---------------------------------------------------------------- the computations behind the cache


def _given(v: View) -> ArrayLike:
    raise AssertionError("a view's matrix is stored when it is made")  # only subsets reach here, via the parent


def _has_variance(v: View) -> bool:
    x = v.x
    if isinstance(x, torch.Tensor):
        return bool((x.detach().amax(dim=0) != x.detach().amin(dim=0)).any())
    x = np.asarray(x)
    return bool((x.max(axis=0) != x.min(axis=0)).any()) if x.size else False


def _gram(v: View) -> np.ndarray:
    if not v.on_device and uses_mixed_precision(v.n, v.d, v.precision):
        return mixed_linear_gram(as_numpy_float(v.x))
    return v.gram64


def _gram64(v: View) -> np.ndarray:
    if v.on_device:  # float64 GEMM on the device, only n x n comes back
        return linear_gram(v.x, "float64")
    f = v.features
    return f @ f.T  # numpy detects a @ a.T and calls syrk


def _mean_terms(v: View) -> tuple[np.ndarray, float, np.ndarray]:
    """a = Xc μ, |μ|², s = row sums of X (float64 numpy), on the device where X lives."""
    x = v.x
    if v.on_device:
        x64 = x.detach().to(torch.float64)
        mu = x64.mean(dim=0)
        a = (x64 - mu) @ mu
        return a.cpu().numpy(), float(mu @ mu), x64.sum(dim=1).cpu().numpy()
    mu = as_numpy_float(x).mean(axis=0, dtype=np.float64)
    f = v.features
    return f @ mu, float(mu @ mu), f.sum(axis=1) + mu.sum()


def _inner(v: View) -> np.ndarray:
    a, mu2, _ = v.cached("mean_terms", _mean_terms)
    g = v.gram64 + a[:, None]  # in place from here: n x n passes dominate at n = 750
    g += a[None, :]
    g += mu2
    return g


def _scale_rows_and_columns(g: np.ndarray, inv: np.ndarray) -> np.ndarray:
    g *= inv[:, None]
    g *= inv[None, :]
    return g


def _cosine(v: View) -> np.ndarray:
    g = v.inner
    norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return _scale_rows_and_columns(g.copy(), inv)


def _pearson(v: View) -> np.ndarray:
    _, _, s = v.cached("mean_terms", _mean_terms)
    r = v.inner - np.outer(s, s / v.d)  # the Gram of the row-centred rows
    sd = np.sqrt(np.clip(np.diag(r), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(sd > 0, 1.0 / sd, np.nan)
    return _scale_rows_and_columns(r, inv)


def _sq_dists(v: View) -> np.ndarray:
    g = v.gram64
    sq = np.diag(g)
    d2 = sq[:, None] + sq[None, :] - 2.0 * g
    np.maximum(d2, 0.0, out=d2)  # rounding can leave -1e-16 where points coincide
    np.fill_diagonal(d2, 0.0)
    return d2


def _spectrum(v: View) -> np.ndarray:
    if ("basis",) in v._cache:  # the eigenvectors' decomposition already has them
        return v._cache[("basis",)][0]
    if v.n <= v.d:
        ev = np.linalg.eigvalsh(center_gram(v.gram64))  # Kc = Xc Xcᵀ (n x n)
    else:
        f = v.features
        ev = np.linalg.eigvalsh(f.T @ f)  # Xcᵀ Xc (d x d)
    return np.clip(ev[::-1], 0.0, None)


def _basis(v: View) -> tuple[np.ndarray, np.ndarray]:
    if v.n <= v.d:
        ev, vecs = np.linalg.eigh(center_gram(v.gram64))  # Kc = U Λ Uᵀ
        ev, u = ev[::-1], vecs[:, ::-1]
    else:
        f = v.features
        ev, w = np.linalg.eigh(f.T @ f)  # Xcᵀ Xc = W Λ Wᵀ, and U = Xc W Λ^{-1/2}
        ev, w = ev[::-1], w[:, ::-1]
        u = None
    ev = np.clip(ev, 0.0, None)
    # Numerical rank: eigenvalues below the solver's round-off (~ size · eps · λ_max) are noise, and a
    # noise direction is arbitrary, so it must not enter a CCA or a nuclear norm.
    tol = ev[0] * max(v.n, v.d) * np.finfo(np.float64).eps if len(ev) else 0.0
    r = int(np.sum(ev > tol))
    if u is None:
        u = (v.features @ w[:, :r]) / np.sqrt(ev[:r])
    return ev, np.ascontiguousarray(u[:, :r])


def top_k_mask(sim: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest entries of each row of `sim`, the diagonal excluded; ties at the
    k-th value go to the lower column index, so every row has exactly k (needs 1 <= k <= n - 1)."""
    n = sim.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
    s = np.array(sim, dtype=np.float64, copy=True)
    np.fill_diagonal(s, -np.inf)
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]  # the k-th largest value of each row
    above = s > kth[:, None]
    tied = s == kth[:, None]
    need = k - above.sum(axis=1)
    return above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))


def standardize(x: ArrayLike) -> ArrayLike:
    """z-score every feature over the examples (axis -2), so no few massive dimensions dominate;
    constant features become 0. Works on [n, d] or [L, n, d], numpy or torch, in float64."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to(torch.float64)
        mean, std = x.mean(dim=-2, keepdim=True), x.std(dim=-2, keepdim=True, unbiased=False)
        return torch.where(std > 0, (x - mean) / torch.where(std > 0, std, 1.0), 0.0)
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(axis=-2, keepdims=True), x.std(axis=-2, keepdims=True)
    return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)
