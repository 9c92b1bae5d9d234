"""CKA-type measures (Kornblith et al., 2019) on views, through analysis.cka's exact-and-fast engine.

    CKA(K, L) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)     Kc = HKH (biased) or U-centred K (debiased)

linear_cka: K = Xc Xcᵀ (the paper's estimator); debiased_cka: the same with Song et al.'s (2012)
unbiased HSIC; rbf_cka: K_ij = exp(-D²_ij / 2σ²), σ = threshold · median distance (Kornblith's gram_rbf),
or an absolute σ = sigma (platonic-rep's and the similarity-repository's `rbf-sigma`), the same for both
matrices. Each view forms its centred Gram once; a pair is then one Frobenius inner product.
"""

from __future__ import annotations

import numpy as np

from analysis.cka import (
    _feature_space_linear_cka,
    _use_features,
    center_gram,
    cross_layer_cka,
    kernel_from_raw,
    safe_ratio,
)
from analysis.measures.registry import register
from analysis.measures.view import MATRIX, View

KORNBLITH = "google-research/google-research representation_similarity/Demo.ipynb"
_HSIC = {"biased": "Gretton et al. (2005): tr(K H L H) (hsic=gretton)",
         "unbiased": "Song et al. (2012) eq. 5, via U-centred Grams (hsic=song)"}
_CENTRING = "none needed on X: the Gram is centred (H K H, or U-centring for the unbiased HSIC)"


def _linear(x: View, y: View, debiased: bool) -> float:
    if not (x.on_device or y.on_device) and _use_features(x.n, [x.d, y.d], 1):  # n > 2d: d x d products are cheaper
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
