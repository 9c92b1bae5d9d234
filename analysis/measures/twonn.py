"""TwoNN intrinsic dimension (Facco et al., 2017, Sci. Rep. 7:12140).

For each point, μ_i = r2_i / r1_i, the ratio of its second- to first-nearest-neighbour distance.
Locally uniform data of dimension d gives F(μ) = 1 - μ^(-d), so -log(1 - F(μ)) = d log μ: d is the
slope through the origin of -log(1 - F_emp(μ_(i))) on log μ_(i), with μ sorted, F_emp(μ_(i)) = i/N
(i = 0..), and the largest `discard_fraction` of the μ left out (their tail is noisy), as in the paper
and scikit-dimension's TwoNN. Points with a duplicate (r1 = 0) are left out: μ is undefined for them.
"""

from __future__ import annotations

import numpy as np

from analysis.measures.registry import register
from analysis.measures.view import View


@register(
    "twonn_id", kind="single",
    description="TwoNN intrinsic dimension from the ratio of second- to first-nearest-neighbour distances",
    meaning="an estimated manifold dimension (>= 0): how many directions the examples vary along locally",
    conventions={"distance": "Euclidean, on the rows as given", "fit": "least squares through the origin of "
                 "-log(1 - i/N) on log μ_(i), the largest discard_fraction of the μ left out",
                 "duplicates": "points with r1 = 0 left out"},
    reference="scikit-learn-contrib/scikit-dimension skdim/id/_TwoNN.py: TwoNN(discard_fraction=0.1)",
)
def twonn_id(x: View, *, discard_fraction: float = 0.1) -> float:
    d2 = x.sq_dists.copy()
    np.fill_diagonal(d2, np.inf)
    if x.n < 3:
        return float("nan")
    two = np.partition(d2, 1, axis=1)[:, :2]  # r1², r2² per point
    valid = two[:, 0] > 0
    mu = np.sort(np.sqrt(two[valid, 1] / two[valid, 0]))
    n = len(mu)
    keep = int(n * (1.0 - discard_fraction))
    log_mu = np.log(mu[:keep])
    y = -np.log(1.0 - np.arange(keep) / n)  # -log(1 - F_emp)
    denominator = log_mu @ log_mu
    return float(log_mu @ y / denominator) if denominator > 0 else float("nan")
