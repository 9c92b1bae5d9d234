"""CKA-type measures (Kornblith et al., 2019) on views, through analysis.cka's exact-and-fast engine.

    CKA(K, L) = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)     Kc = HKH (biased) or U-centred K (debiased)

linear_cka: K = Xc Xcᵀ (the paper's estimator); debiased_cka: the same with Song et al.'s (2012)
unbiased HSIC; rbf_cka: K_ij = exp(-D²_ij / 2σ²), σ = threshold · median distance (Kornblith's gram_rbf).
Each view forms its centred Gram once; a pair is then one Frobenius inner product.
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
)
def linear_cka(x: View, y: View) -> float:
    return _linear(x, y, debiased=False)


@register(
    "debiased_cka", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Linear CKA with Song et al.'s unbiased HSIC (U-centred Grams): ~0 for independent data at any n",
    meaning="1 = identical up to rotation and isotropic scale; ~0 (may be < 0) for independent data",
    estimator={"kernel": "linear", "debiased": True, "threshold": None},
    cross_layer=_cross_linear(True),
)
def debiased_cka(x: View, y: View) -> float:
    return _linear(x, y, debiased=True)


def _rbf_centered(view: View, threshold: float, debiased: bool) -> tuple[np.ndarray, float] | None:
    """(centred RBF Gram, its norm), or None when the bandwidth is 0 (most points coincide)."""

    def compute(v: View) -> tuple[np.ndarray, float] | None:
        if np.median(v.sq_dists) <= 0.0:
            return None
        kc = center_gram(kernel_from_raw(v.sq_dists, "rbf", threshold), debiased)
        return kc, float(np.linalg.norm(kc))

    follow = lambda value, idx: None if value is None else (MATRIX(value[0], idx), value[1])  # noqa: E731
    return view.cached(("rbf_cka", threshold, debiased), compute, follow)


def _cross_rbf(xs, ys, threshold: float = 1.0, debiased: bool = False) -> np.ndarray:
    return cross_layer_cka(xs, ys, "rbf", debiased, threshold)


@register(
    "rbf_cka", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="RBF-kernel CKA, bandwidth sigma = threshold x median pairwise distance (per matrix)",
    meaning="1 = identical up to rotation, shift and isotropic scale",
    estimator={"kernel": "rbf", "debiased": False, "threshold": 1.0},
    cross_layer=_cross_rbf,
)
def rbf_cka(x: View, y: View, *, threshold: float = 1.0, debiased: bool = False) -> float:
    kx, ky = _rbf_centered(x, threshold, debiased), _rbf_centered(y, threshold, debiased)
    if kx is None or ky is None:
        return float("nan")
    return safe_ratio(np.vdot(kx[0], ky[0]), kx[1] * ky[1])
