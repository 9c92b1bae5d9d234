"""Variance dimensionality (the paper's §4.3, Figure 5): principal components needed for 99% of the variance.

The spectrum comes from the centred Gram (n <= d) or the covariance (n > d): both have the squared
singular values of the centred data as non-zero eigenvalues (view.spectrum). With n examples the
centred data has rank at most min(n-1, d): with n = 750 and d = 4096 a model needing "more
dimensions" can never show more than n-1 of them, so read values near min(n-1, d) as "at the cap".
"""

from __future__ import annotations

import numpy as np

from analysis.measures.registry import register
from analysis.measures.view import View


def n_components_for(spectrum: np.ndarray, threshold: float = 0.99) -> int:
    """Smallest k with sum(top k eigenvalues) >= threshold * total (0 for constant data)."""
    total = spectrum.sum()
    if total <= 0.0:
        return 0
    ratio = np.cumsum(spectrum) / total
    return int(min(np.searchsorted(ratio, threshold - 1e-12) + 1, len(spectrum)))


@register(
    "pca99", kind="single",
    description="Number of principal components explaining `threshold` (99%) of the variance",
    meaning="a count in [0, min(n-1, d)]: how many directions the layer spreads its examples over",
    conventions={"centring": "columns centred", "spectrum": "squared singular values of the centred matrix",
                 "count": "the smallest k with cumulative explained ratio >= threshold (sklearn's PCA(n_components="
                          "threshold) takes > threshold: they differ only on an exact tie)"},
    reference="scikit-learn sklearn/decomposition/_pca.py: PCA(n_components=threshold).n_components_",
)
def pca99(x: View, *, threshold: float = 0.99) -> float:
    return float(n_components_for(x.spectrum, threshold))
