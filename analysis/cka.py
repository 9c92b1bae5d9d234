"""Centred kernel alignment (Kornblith et al., 2019), exact first, then fast.

Notation follows Kornblith's demo (google-research/representation_similarity):

    X: n x d1, Y: n x d2, rows aligned (row i of X and of Y come from the same example)
    K = k(X), L = k(Y)            n x n Gram matrices (linear: X Xᵀ; RBF: exp(-D² / 2σ²))
    H = I - 11ᵀ/n                 centring matrix
    biased HSIC    = <HKH, HLH>_F / (n-1)²                       (Gretton et al., 2005)
    debiased HSIC  = <U(K), U(L)>_F / (n(n-3))                    (Song et al., 2012, as the
                     U-centred inner product of Székely & Rizzo, 2014 — Kornblith's `unbiased`)
    CKA(K, L)      = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))    (the 1/(n-1)², 1/(n(n-3)) cancel)

Speed (see benchmarks/cka_engine.py):
  * Gram form costs ~n²d per matrix (numpy's `a @ a.T` runs BLAS syrk, half a GEMM); the
    feature-space form ||YᵀX||²_F costs ~n·d1·d2 per pair. We pick the cheaper one (`_use_features`).
  * Every model's centred Gram is computed once per layer and reused by every pair that involves it
    (`cka_pairs`, `cross_layer_cka`); a pair is then one Frobenius inner product of n² numbers.
  * Large linear Grams (n²d ≥ 2^30) are formed with a float32 syrk of features centred with float64
    means and rescaled by a power of two; everything after it (centring, HSIC sums, norms) is float64. Measured |ΔCKA| ≲ 3e-8 at
    n=750, d=4096, including features with 300x outlier dimensions. `precision="float64"` forces float64.
  * torch tensors on CUDA form their Gram on the GPU in float64; only the n x n result comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
Kernel = Literal["linear", "rbf"]
Precision = Literal["auto", "float64", "mixed"]

# n²·d above which the linear Gram uses a float32 GEMM (with float64 centring and sums) on CPU.
MIXED_MIN_WORK = 1 << 30


# ---------------------------------------------------------------- inputs


def _check_2d(x: ArrayLike) -> None:
    if x.ndim != 2:
        raise ValueError(f"expected an n x d matrix, got shape {tuple(x.shape)}")


def _is_cuda(x: ArrayLike) -> bool:
    return isinstance(x, torch.Tensor) and x.device.type != "cpu"


def _numpy64(x: ArrayLike) -> np.ndarray:
    """Any CPU/GPU array -> float64 numpy (bf16 tensors go through torch's own cast)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _centered_features(x: ArrayLike) -> ArrayLike:
    """Column-centred float64 copy of x (torch on its device, else numpy).

    Centring the features first is exact algebra (H X Xᵀ H = (HX)(HX)ᵀ; distances are translation
    invariant; U-centring removes the additive terms a shift produces) and it keeps the Gram's
    entries small, which is what lets a float32 GEMM stay accurate.
    """
    _check_2d(x)
    if _is_cuda(x):
        x = x.detach().to(torch.float64)
        return x - x.mean(dim=0, keepdim=True)
    x = _numpy64(x)
    return x - x.mean(axis=0, keepdims=True)


# ---------------------------------------------------------------- Gram matrices


def _numpy_float(x: ArrayLike) -> np.ndarray:
    """CPU array as float32 (kept when already float32, no copy) or float64 numpy."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.numpy() if x.dtype in (torch.float32, torch.float64) else x.to(torch.float64).numpy()
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def _use_mixed(n: int, d: int, precision: Precision) -> bool:
    return precision == "mixed" or (precision == "auto" and n * n * d >= MIXED_MIN_WORK)


def _mixed_linear_gram(x: np.ndarray) -> np.ndarray:
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


def _linear_gram(x: ArrayLike, precision: Precision) -> np.ndarray:
    """K = Xc Xcᵀ (Xc = column-centred x) as float64 numpy."""
    if _is_cuda(x):  # float64 GEMM on the device, only n x n comes back
        xc = _centered_features(x)
        return (xc @ xc.T).cpu().numpy()
    n, d = x.shape
    if _use_mixed(n, d, precision):
        return _mixed_linear_gram(_numpy_float(x))
    xc = _centered_features(x)
    return xc @ xc.T  # numpy detects a @ a.T and calls syrk


def raw_gram(x: ArrayLike, kernel: Kernel = "linear", precision: Precision = "auto") -> np.ndarray:
    """The per-example quantity every kernel is built from, before any centring.

    linear: K = Xc Xcᵀ;  rbf: squared distances D²_ij = |x_i - x_j|².
    Kept separate so bootstrap resamples can index it (raw[idx][:, idx]) without a new GEMM.
    """
    _check_2d(x)
    if kernel == "linear":
        return _linear_gram(x, precision)
    if kernel == "rbf":
        g = _linear_gram(x, "float64")  # distances cancel; keep them in float64
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
    """num / den, or nan when den is 0: CKA is undefined when a representation has no variance
    (e.g. layer 0 when every probe ends with the same token), and must not look like a number."""
    return float(num) / float(den) if den > 0 and np.isfinite(den) else float("nan")


def cka_from_centered(kc: np.ndarray, lc: np.ndarray) -> float:
    """CKA = <Kc, Lc>_F / (||Kc||_F ||Lc||_F) for already centred Grams (float64)."""
    hsic_kl = float(np.vdot(kc, lc))
    return safe_ratio(hsic_kl, float(np.linalg.norm(kc)) * float(np.linalg.norm(lc)))


# ---------------------------------------------------------------- feature-space form (n > d)


def _use_features(n: int, dims: Sequence[int], n_pairs: int) -> bool:
    """True when the feature-space form needs fewer multiply-adds than the Gram form.

    Gram form: one syrk per matrix, n²d/2 each. Feature form: XᵀY per pair (n·d1·d2) plus XᵀX per
    matrix (n·d²/2). For one pair with d1 = d2 = d this is n > 2d.
    """
    gram_cost = sum(n * n * d / 2 for d in dims)
    feat_cost = n_pairs * max(dims) ** 2 * n + sum(n * d * d / 2 for d in dims)
    return feat_cost < gram_cost


def _debiased_dot(xty2: float, rows_x: np.ndarray, rows_y: np.ndarray, nx2: float, ny2: float, n: int) -> float:
    """Unbiased HSIC (times n(n-3)) from feature-space sums (Kornblith's helper):
    ||XᵀY||² - n/(n-2) <r_x, r_y> + ||X||²||Y||² / ((n-1)(n-2)), r = squared row norms of centred data.
    """
    return xty2 - n / (n - 2.0) * float(rows_x @ rows_y) + nx2 * ny2 / ((n - 1) * (n - 2))


def _feature_space_linear_cka(xc: np.ndarray, yc: np.ndarray, debiased: bool) -> float:
    """Linear CKA = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F) on centred float64 features."""
    xty = float(np.linalg.norm(xc.T @ yc)) ** 2
    xtx = float(np.linalg.norm(xc.T @ xc))
    yty = float(np.linalg.norm(yc.T @ yc))
    if not debiased:
        return safe_ratio(xty, xtx * yty)
    n = xc.shape[0]
    if n < 4:
        raise ValueError("the debiased estimator needs n >= 4 examples")
    rx, ry = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc)
    nx2, ny2 = float(rx.sum()), float(ry.sum())
    num = _debiased_dot(xty, rx, ry, nx2, ny2, n)
    den_x = _debiased_dot(xtx**2, rx, rx, nx2, nx2, n)
    den_y = _debiased_dot(yty**2, ry, ry, ny2, ny2, n)
    return safe_ratio(num, np.sqrt(den_x * den_y)) if den_x * den_y > 0 else float("nan")


# ---------------------------------------------------------------- public: one pair


def _check_pair(x: ArrayLike, y: ArrayLike) -> None:
    _check_2d(x)
    _check_2d(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same rows (examples): {x.shape[0]} != {y.shape[0]}")


def linear_cka(x: ArrayLike, y: ArrayLike, debiased: bool = False, precision: Precision = "auto") -> float:
    """Linear CKA of two row-aligned n x d matrices (numpy or torch, CPU or CUDA), as a float64 float."""
    _check_pair(x, y)
    n = x.shape[0]
    if not (_is_cuda(x) or _is_cuda(y)) and _use_features(n, [x.shape[1], y.shape[1]], 1):
        return float(_feature_space_linear_cka(_centered_features(x), _centered_features(y), debiased))
    kc = centered_gram(x, "linear", debiased, precision=precision)
    lc = centered_gram(y, "linear", debiased, precision=precision)
    return cka_from_centered(kc, lc)


def rbf_cka(x: ArrayLike, y: ArrayLike, threshold: float = 1.0, debiased: bool = False) -> float:
    """RBF CKA, bandwidth σ = threshold x median pairwise distance (per matrix), float64."""
    _check_pair(x, y)
    kc = centered_gram(x, "rbf", debiased, threshold)
    lc = centered_gram(y, "rbf", debiased, threshold)
    return cka_from_centered(kc, lc)


# ---------------------------------------------------------------- public: batched over layers and pairs


def _n_layers(reps: Mapping[str, ArrayLike]) -> tuple[int, int]:
    shapes = {name: tuple(a.shape) for name, a in reps.items()}
    for name, s in shapes.items():
        if len(s) != 3:
            raise ValueError(f"{name}: expected [L, n, d], got shape {s}")
    ls = {s[0] for s in shapes.values()}
    ns = {s[1] for s in shapes.values()}
    if len(ls) != 1 or len(ns) != 1:
        raise ValueError(f"all representations must share L and n: {shapes}")
    return ls.pop(), ns.pop()


def cka_pairs(
    reps: Mapping[str, ArrayLike],
    pairs: Sequence[tuple[str, str]],
    kernel: Kernel = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    precision: Precision = "auto",
) -> dict[tuple[str, str], np.ndarray]:
    """CKA per layer for every (a, b) in pairs, with reps[m] of shape [L, n, d_m].

    Layer by layer, each model's centred Gram is formed once and shared by all pairs using it, so
    e.g. {pretrained, multitask} x control costs 3 Grams per layer, not 4 (and not 6 d x d products).
    Memory: one n x n float64 matrix per model at a time.
    """
    n_layers, n = _n_layers(reps)
    used = sorted({m for p in pairs for m in p})
    out = {p: np.empty(n_layers, dtype=np.float64) for p in pairs}
    any_cuda = any(_is_cuda(reps[m]) for m in used)
    features = (
        kernel == "linear" and not any_cuda and _use_features(n, [reps[m].shape[2] for m in used], len(pairs))
    )
    for layer in range(n_layers):
        if features:
            cent = {m: _centered_features(reps[m][layer]) for m in used}
            for a, b in pairs:
                out[(a, b)][layer] = _feature_space_linear_cka(cent[a], cent[b], debiased)
            continue
        grams = {m: centered_gram(reps[m][layer], kernel, debiased, threshold, precision) for m in used}
        norms = {m: float(np.linalg.norm(g)) for m, g in grams.items()}
        for a, b in pairs:
            out[(a, b)][layer] = safe_ratio(np.vdot(grams[a], grams[b]), norms[a] * norms[b])
    return out


def layerwise_cka(
    xs: ArrayLike,
    ys: ArrayLike,
    kernel: Kernel = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    precision: Precision = "auto",
) -> np.ndarray:
    """CKA between xs[l] and ys[l] for every layer l; xs, ys: [L, n, d] -> float64 [L]."""
    return cka_pairs({"x": xs, "y": ys}, [("x", "y")], kernel, debiased, threshold, precision)[("x", "y")]


def _unit_grams(
    reps: ArrayLike, kernel: Kernel, debiased: bool, threshold: float, precision: Precision
) -> np.ndarray:
    """[L, n²] matrix whose row l is vec(centred Gram of layer l) / its Frobenius norm."""
    n_layers, n = reps.shape[0], reps.shape[1]
    out = np.empty((n_layers, n * n), dtype=np.float64)
    for layer in range(n_layers):
        g = centered_gram(reps[layer], kernel, debiased, threshold, precision).ravel()
        norm = np.linalg.norm(g)
        out[layer] = g / norm if norm > 0 else np.nan  # no variance at this layer: CKA undefined
    return out


def cross_layer_cka(
    xs: ArrayLike,
    ys: ArrayLike,
    kernel: Kernel = "linear",
    debiased: bool = False,
    threshold: float = 1.0,
    precision: Precision = "auto",
) -> np.ndarray:
    """CKA of every layer of xs against every layer of ys: [Lx, n, dx], [Ly, n, dy] -> [Lx, Ly].

    Lx + Ly Grams, then the whole matrix is one GEMM of unit-norm vectorised Grams.
    """
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"xs and ys must have the same rows (examples): {xs.shape[1]} != {ys.shape[1]}")
    gx = _unit_grams(xs, kernel, debiased, threshold, precision)
    gy = gx if ys is xs else _unit_grams(ys, kernel, debiased, threshold, precision)
    return gx @ gy.T
