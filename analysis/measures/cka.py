"""CKA-type measures (Kornblith et al., 2019) on views, with the Gram maths of analysis.measures.gram.

    CKA(K, L) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)     Kc = HKH (biased) or U-centred K (debiased)

linear_cka: K = Xc Xcᵀ (the paper's estimator); debiased_cka: the same with Song et al.'s (2012)
unbiased HSIC; rbf_cka: K_ij = exp(-D²_ij / 2σ²), σ = threshold · median distance (Kornblith's gram_rbf),
or an absolute σ = sigma (platonic-rep's and the similarity-repository's `rbf-sigma`), the same for both
matrices. Each view forms its centred Gram once; a pair is then one Frobenius inner product.

Two faster forms of the same numbers: when n > 2d, linear CKA in feature space, ||YᵀX||²_F / (||XᵀX||_F
||YᵀY||_F), costs n·d1·d2 per pair instead of n²d per Gram (`_feature_form_is_cheaper`); and every layer
of one model against every layer of another (cross_layer_cka) is Lx + Ly Grams and one GEMM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.measures.arrays import ArrayLike
from analysis.measures.gram import Kernel, Precision, center_gram, centered_gram, kernel_from_raw, safe_ratio
from analysis.measures.registry import register
from analysis.measures.view import MATRIX, View

KORNBLITH = "google-research/google-research representation_similarity/Demo.ipynb"
_HSIC = {"biased": "Gretton et al. (2005): tr(K H L H) (hsic=gretton)",
         "unbiased": "Song et al. (2012) eq. 5, via U-centred Grams (hsic=song)"}
_CENTRING = "none needed on X: the Gram is centred (H K H, or U-centring for the unbiased HSIC)"


# ---------------------------------------------------------------- feature-space form (n > 2d)


def _feature_form_is_cheaper(n: int, dims: Sequence[int], n_pairs: int) -> bool:
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


# ---------------------------------------------------------------- every layer against every layer


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


# ---------------------------------------------------------------- the registered measures


def _linear(x: View, y: View, debiased: bool) -> float:
    if not (x.on_device or y.on_device) and _feature_form_is_cheaper(x.n, [x.d, y.d], 1):  # n > 2d: d x d products are cheaper
        return float(_feature_space_linear_cka(x.features, y.features, debiased))
    hsic_xy = np.vdot(x.centered_gram(debiased), y.centered_gram(debiased))
    return safe_ratio(hsic_xy, x.centered_norm(debiased) * y.centered_norm(debiased))


def _cross_linear(debiased: bool):
    def cross(xs, ys) -> np.ndarray:
        return cross_layer_cka(xs, ys, "linear", debiased)

    return cross


@register(
    "linear_cka", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Linear CKA: <HKH, HLH> / (||HKH|| ||HLH||), K = X Xᵀ (the paper's estimator; biased at small n)",
    meaning="1 = identical up to rotation and isotropic scale; ~0 for independent data only at large n",
    estimator={"kernel": "linear", "debiased": False, "threshold": None},
    cross_layer=_cross_linear(False),
    ids={"cka-kernel=linear-hsic=gretton-score": {}},
    conventions={"kernel": "linear, K = X Xᵀ", "hsic": _HSIC["biased"], "centring": _CENTRING},
    reference=f"{KORNBLITH}: gram_linear + cka (debiased=False); equal to feature_space_linear_cka",
)
def linear_cka(x: View, y: View) -> float:
    return _linear(x, y, debiased=False)


@register(
    "debiased_cka", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Linear CKA with Song et al.'s unbiased HSIC (U-centred Grams): ~0 for independent data at any n",
    meaning="1 = identical up to rotation and isotropic scale; ~0 (may be < 0) for independent data",
    estimator={"kernel": "linear", "debiased": True, "threshold": None},
    cross_layer=_cross_linear(True),
    ids={"cka-kernel=linear-hsic=song-score": {}},
    conventions={"kernel": "linear, K = X Xᵀ", "hsic": _HSIC["unbiased"], "centring": _CENTRING},
    reference=f"{KORNBLITH}: gram_linear + cka(debiased=True); platonic-rep metrics.py: hsic_unbiased",
)
def debiased_cka(x: View, y: View) -> float:
    return _linear(x, y, debiased=True)


def _rbf_centered(view: View, threshold: float, debiased: bool, sigma: float | None = None) -> tuple[np.ndarray, float] | None:
    """(centred RBF Gram, its norm), or None when the median-rule bandwidth is 0 (most points coincide)."""
    if sigma is not None and not sigma > 0:
        raise ValueError(f"rbf_cka: sigma must be > 0, got {sigma}")

    def compute(v: View) -> tuple[np.ndarray, float] | None:
        if sigma is not None:  # absolute bandwidth: K_ij = exp(-D²_ij / 2σ²)
            kc = center_gram(np.exp(-v.sq_dists / (2.0 * sigma**2)), debiased)
        elif np.median(v.sq_dists) <= 0.0:
            return None
        else:
            kc = center_gram(kernel_from_raw(v.sq_dists, "rbf", threshold), debiased)
        return kc, float(np.linalg.norm(kc))

    follow = lambda value, idx: None if value is None else (MATRIX(value[0], idx), value[1])  # noqa: E731
    key = ("rbf_cka", threshold, debiased) if sigma is None else ("rbf_cka_sigma", float(sigma), debiased)
    return view.cached(key, compute, follow)


def _cross_rbf(xs, ys, threshold: float = 1.0, debiased: bool = False, sigma: float | None = None) -> np.ndarray:
    if sigma is None:
        return cross_layer_cka(xs, ys, "rbf", debiased, threshold)
    # Absolute bandwidth: the engine's batched path knows only the median rule, so one view per layer
    # (each Gram formed once), then every pair is an inner product of unit-norm centred Grams.
    def units(stack) -> np.ndarray:
        out = []
        for layer in stack:
            kc = _rbf_centered(View(layer), threshold, debiased, sigma)
            out.append(np.full(layer.shape[0] ** 2, np.nan) if kc is None or kc[1] == 0 else kc[0].ravel() / kc[1])
        return np.stack(out)

    ux = units(xs)
    return ux @ (ux if ys is xs else units(ys)).T


@register(
    "rbf_cka", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="RBF-kernel CKA, bandwidth sigma = threshold x median pairwise distance (per matrix), or an absolute sigma",
    meaning="1 = identical up to rotation, shift and isotropic scale",
    estimator={"kernel": "rbf", "debiased": False, "threshold": 1.0},
    cross_layer=_cross_rbf,
    ids={"cka-kernel=(rbf-sigma={sigma})-hsic=gretton-score": {"debiased": False},
         "cka-kernel=(rbf-sigma={sigma})-hsic=song-score": {"debiased": True},
         "cka-kernel=(rbf-sigma=median)-hsic=gretton-score": {"sigma": None, "threshold": 1.0, "debiased": False},
         "cka-kernel=(rbf-sigma=median)-hsic=song-score": {"sigma": None, "threshold": 1.0, "debiased": True},
         "cka-kernel=(rbf-threshold={threshold})-hsic=gretton-score": {"sigma": None, "debiased": False},
         "cka-kernel=(rbf-threshold={threshold})-hsic=song-score": {"sigma": None, "debiased": True}},
    conventions={
        "kernel": "RBF, K_ij = exp(-||x_i - x_j||² / 2σ²)",
        "bandwidth": "default: the median rule, σ² = threshold² · median of the n x n squared distances (diagonal "
                     "included), per matrix (Kornblith's gram_rbf); sigma=σ: an absolute σ, the same for both "
                     "matrices (platonic-rep, the similarity-repository's rbf-sigma). The similarity-repository has "
                     "no id for the median rule: rbf-sigma=median and rbf-threshold= are this project's spelling",
        "hsic": f"debiased=False: {_HSIC['biased']}; debiased=True: {_HSIC['unbiased']}",
        "centring": _CENTRING,
    },
    reference=f"{KORNBLITH}: gram_rbf(x, threshold) + cka; absolute sigma: minyoungg/platonic-rep metrics.py: "
              "AlignmentMetrics.cka(kernel_metric='rbf', rbf_sigma) without its 1e-6 in the denominator",
)
def rbf_cka(x: View, y: View, *, threshold: float = 1.0, debiased: bool = False, sigma: float | None = None) -> float:
    kx, ky = _rbf_centered(x, threshold, debiased, sigma), _rbf_centered(y, threshold, debiased, sigma)
    if kx is None or ky is None:
        return float("nan")
    return safe_ratio(np.vdot(kx[0], ky[0]), kx[1] * ky[1])
