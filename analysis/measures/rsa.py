"""Representational similarity analysis (Kriegeskorte et al., 2008).

    RDM_ij = 1 - corr(x_i, x_j)            dissimilarity of two examples' rows (Pearson over features)
    rsa    = Spearman(upper(RDM_X), upper(RDM_Y))   over the n(n-1)/2 pairs i < j

Spearman is the Pearson correlation of the ranks (ties share their average rank). Each view ranks
its RDM once and stores the ranks z-scored over the upper triangle, mirrored into a symmetric matrix
with a zero diagonal (Z), so a pair is one inner product, rsa = Σ_{i<j} Zx_ij Zy_ij = <Zx, Zy>_F / 2,
and a permutation of the examples only permutes Z.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from analysis.measures.registry import register
from analysis.measures.view import MATRIX, View


def _rank_z(view: View) -> np.ndarray | None:
    """Z: z-scored ranks of the upper triangle of the RDM, symmetric; None when undefined."""

    def compute(v: View) -> np.ndarray | None:
        iu = np.triu_indices(v.n, 1)
        rdm = 1.0 - v.pearson[iu]
        if not np.isfinite(rdm).all():  # a constant row has no correlation with anything
            return None
        r = rankdata(rdm)
        r -= r.mean()
        norm = np.linalg.norm(r)
        if norm == 0.0:  # every pair equally dissimilar: no ranking to correlate
            return None
        z = np.zeros((v.n, v.n))
        z[iu] = r / norm
        return z + z.T

    follow = lambda z, idx: None if z is None else MATRIX(z, idx)  # noqa: E731
    return view.cached("rsa_rank_z", compute, follow)


@register(
    "rsa", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="RSA: Spearman correlation between the upper triangles of the RDMs (1 - Pearson correlation of rows)",
    meaning="1 = the same ordering of example dissimilarities; 0 = unrelated",
    ids={"rsa-rdm=correlation-compare=spearman": {}},
    conventions={"rdm": "correlation distance, 1 - Pearson correlation of two examples' rows (over features)",
                 "compare": "Spearman correlation (ties share their average rank) of the upper triangles, i < j",
                 "centring": "none beyond the correlation's own (each row centred over its features)"},
    reference="rsagroup/rsatoolbox src/rsatoolbox/rdm/calc.py: calc_rdm(method='correlation') + "
              "src/rsatoolbox/rdm/compare.py: compare(method='spearman')",
)
def rsa(x: View, y: View) -> float:
    if x.n < 3:
        return float("nan")
    zx, zy = _rank_z(x), _rank_z(y)
    if zx is None or zy is None:
        return float("nan")
    return float(np.vdot(zx, zy) / 2.0)
