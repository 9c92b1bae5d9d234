"""Orthogonal Procrustes similarity (Ding et al., 2021; Williams et al., 2021).

On column-centred, Frobenius-normalised X̃ = Xc/||Xc||_F and Ỹ = Yc/||Yc||_F:

    d²(X, Y) = min_Q ||X̃ - ỸQ||²_F = 2 - 2 ||X̃ᵀỸ||_*         (Q orthogonal)
    similarity = ||X̃ᵀỸ||_* = 1 - d²/2

||XcᵀYc||_* never needs the d x d product: with Xc = Ux Λx^{1/2} Vxᵀ (view.basis, shared with PCA and
SVCCA), XcᵀYc = Vx (Λx^{1/2} Uxᵀ Uy Λy^{1/2}) Vyᵀ, so its singular values are those of the r x r
matrix Fxᵀ Fy, F = U Λ^{1/2} (the principal component scores): the singular values of Kx^{1/2} Ky^{1/2}.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from analysis.measures.gram import safe_ratio
from analysis.measures.registry import register
from analysis.measures.view import ROWS, View


def _scores(view: View) -> np.ndarray:
    """F = U Λ^{1/2}, n x rank: the principal component scores, FᵀF = Λ, F Fᵀ = Kc."""

    def compute(v: View) -> np.ndarray:
        ev, u = v.basis
        return u * np.sqrt(ev[: u.shape[1]])

    return view.cached("pc_scores", compute, ROWS)


@register(
    "procrustes", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="Orthogonal Procrustes similarity ||X̃ᵀỸ||_* = 1 - d²/2 on centred, Frobenius-normalised X, Y",
    meaning="1 = identical up to rotation and isotropic scale; lower = further apart after the best rotation",
    ids={"procrustes-score": {}},
    conventions={"centring": "columns centred", "normalisation": "each matrix scaled to unit Frobenius norm",
                 "distance": "the score is ||X̃ᵀỸ||_* = cos(angular Procrustes distance) = 1 - d²/2, d the "
                             "Euclidean Procrustes distance on the normalised matrices (procrustes-distance=angular "
                             "is its arccos)",
                 "alignment": "orthogonal Q (rotations and reflections), no scaling beyond the normalisation"},
    reference="ahwillia/netrep netrep/metrics/linear.py: LinearMetric(alpha=1, center_columns=True, "
              "score_method='angular'); score = cos of its distance",
)
def procrustes(x: View, y: View) -> float:
    fx, fy = _scores(x), _scores(y)
    if fx.shape[1] == 0 or fy.shape[1] == 0:
        return float("nan")
    nuclear = scipy.linalg.svdvals(fx.T @ fy).sum()  # ||XcᵀYc||_*
    return safe_ratio(nuclear, np.sqrt(x.total_variance * y.total_variance))  # ||Xc||_F ||Yc||_F
