"""Gram matrices, kernels and centring: the maths the views (analysis.measures.view) and measures share.

Notation follows Kornblith's demo (google-research/representation_similarity):

    X: n x d, rows are examples       K = k(X), an n x n Gram matrix (linear: Xc Xcᵀ; RBF: exp(-D² / 2σ²))
    H = I - 11ᵀ/n                     centring matrix
    biased HSIC    = <HKH, HLH>_F / (n-1)²                       (Gretton et al., 2005)
    debiased HSIC  = <U(K), U(L)>_F / (n(n-3))                    (Song et al., 2012, as the
                     U-centred inner product of Székely & Rizzo, 2014 — Kornblith's `unbiased`)

Speed and precision (see benchmarks/cka_engine.py):
  * A Gram costs ~n²d (numpy's `a @ a.T` runs BLAS syrk, half a GEMM); a view forms it once per
    (model, layer) and every measure and pair reuses it.
  * Large linear Grams (n²d ≥ 2^30) are formed with a float32 syrk of features centred with float64
    means and rescaled by a power of two; everything after it (centring, HSIC sums, norms) is float64. Measured |ΔCKA| ≲ 3e-8 at
    n=750, d=4096, including features with 300x outlier dimensions. `precision="float64"` forces float64.
  * torch tensors on CUDA form their Gram on the GPU in float64; only the n x n result comes back.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from analysis.measures.arrays import ArrayLike, as_numpy_float, centered_features, check_2d, is_cuda

Kernel = Literal["linear", "rbf"]
Precision = Literal["auto", "float64", "mixed"]

# n²·d above which the linear Gram uses a float32 GEMM (with float64 centring and sums) on CPU.
MIXED_MIN_WORK = 1 << 30


def uses_mixed_precision(n: int, d: int, precision: Precision) -> bool:
    """Whether an n x d matrix's linear Gram is formed by the float32 syrk (`mixed_linear_gram`)."""
    return precision == "mixed" or (precision == "auto" and n * n * d >= MIXED_MIN_WORK)


def mixed_linear_gram(x: np.ndarray) -> np.ndarray:
    """K = Xc Xcᵀ through a float32 syrk, returned in float64.

    The column means are float64; a float32 input is centred in float32 (its rounding of the mean is a
    constant shift per column, which the float64 re-centring of K removes exactly). A power-of-two
    rescale (exact) keeps float32 products away from overflow/underflow whatever the magnitude.
    """
    mean = x.mean(axis=0, dtype=np.float64)
    if x.dtype == np.float32:
        xc = x - mean.astype(np.float32)
    else:
        xc = (x - mean).astype(np.float32)
    exponent = int(np.frexp(float(np.abs(xc).max()) or 1.0)[1])
    np.ldexp(xc, -exponent, out=xc)  # |xc| < 1 now, exactly
    k = (xc @ xc.T).astype(np.float64)  # numpy detects a @ a.T and calls syrk
    return np.ldexp(k, 2 * exponent, out=k)


def linear_gram(x: ArrayLike, precision: Precision) -> np.ndarray:
    """K = Xc Xcᵀ (Xc = column-centred x) as float64 numpy."""
    if is_cuda(x):  # float64 GEMM on the device, only n x n comes back
        xc = centered_features(x)
        return (xc @ xc.T).cpu().numpy()
    n, d = x.shape
    if uses_mixed_precision(n, d, precision):
        return mixed_linear_gram(as_numpy_float(x))
    xc = centered_features(x)
    return xc @ xc.T  # numpy detects a @ a.T and calls syrk


def raw_gram(x: ArrayLike, kernel: Kernel = "linear", precision: Precision = "auto") -> np.ndarray:
    """The per-example quantity every kernel is built from, before any centring.

    linear: K = Xc Xcᵀ;  rbf: squared distances D²_ij = |x_i - x_j|².
    """
    check_2d(x)
    if kernel == "linear":
        return linear_gram(x, precision)
    if kernel == "rbf":
        g = linear_gram(x, "float64")  # distances cancel; keep them in float64
        sq = np.diag(g)
        d2 = sq[:, None] + sq[None, :] - 2.0 * g  # D²_ij = |x_i|² + |x_j|² - 2 x_i·x_j
        np.maximum(d2, 0.0, out=d2)  # rounding can leave -1e-16 where points coincide
        return d2
    raise ValueError(f"unknown kernel {kernel!r} (expected 'linear' or 'rbf')")


def kernel_from_raw(raw: np.ndarray, kernel: Kernel = "linear", threshold: float = 1.0) -> np.ndarray:
    """Gram matrix from `raw_gram` output.

    rbf: K_ij = exp(-D²_ij / (2 σ²)), σ = threshold · median distance, with the median taken over the
    full n x n matrix of squared distances (diagonal included), exactly as Kornblith's `gram_rbf`.
    """
    if kernel == "linear":
        return raw
    if kernel == "rbf":
        sq_median = float(np.median(raw))
        if sq_median <= 0.0:
            raise ValueError("RBF bandwidth is zero: more than half of the pairwise distances are 0")
        return np.exp(-raw / (2.0 * threshold**2 * sq_median))
    raise ValueError(f"unknown kernel {kernel!r} (expected 'linear' or 'rbf')")


def center_gram(gram: np.ndarray, debiased: bool = False) -> np.ndarray:
    """Centred copy of a symmetric Gram matrix, in float64.

    biased:   HKH, i.e. K_ij - m_i - m_j + m̄ with m the column means (Kornblith's `center_gram`).
    debiased: U-centring (Székely & Rizzo 2014, Kornblith's `unbiased=True`): with K̃ = K with zero
              diagonal, s_i = Σ_j K̃_ij, S = Σ_i s_i,
              U_ij = K̃_ij - s_i/(n-2) - s_j/(n-2) + S/((n-1)(n-2)) for i != j, U_ii = 0.
              <U(K), U(L)> / (n(n-3)) is Song et al.'s (2012) unbiased HSIC.
    """
    g = np.array(gram, dtype=np.float64, copy=True)
    n = g.shape[0]
    if debiased:
        if n < 4:
            raise ValueError("the debiased estimator needs n >= 4 examples")
        np.fill_diagonal(g, 0.0)
        means = g.sum(axis=0) / (n - 2)  # s_j / (n-2)
        means -= means.sum() / (2 * (n - 1))  # each of m_i, m_j carries half of S/((n-1)(n-2))
        g -= means[:, None]
        g -= means[None, :]
        np.fill_diagonal(g, 0.0)
    else:
        means = g.mean(axis=0)
        means -= means.mean() / 2  # m_i + m_j - m̄ split evenly between rows and columns
        g -= means[:, None]
        g -= means[None, :]
    return g


def centered_gram(
    x: ArrayLike,
    kernel: Kernel = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    precision: Precision = "auto",
) -> np.ndarray:
    """Centred (or U-centred) Gram matrix of x, float64 n x n."""
    return center_gram(kernel_from_raw(raw_gram(x, kernel, precision), kernel, threshold), debiased)


def safe_ratio(num: float, den: float) -> float:
    """num / den, or nan when den is 0: a similarity is undefined when a representation has no variance
    (e.g. layer 0 when every probe ends with the same token), and must not look like a number."""
    return float(num) / float(den) if den > 0 and np.isfinite(den) else float("nan")
