"""Correlation statistics with p-values: thin, NaN-safe wrappers over scipy.stats."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def _prepare(x, y) -> tuple[np.ndarray, np.ndarray] | None:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    # A correlation with fewer than 3 points or a constant side is undefined: report nan, not a warning.
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return x, y


def _correlate(test, x, y) -> tuple[float, float]:
    pair = _prepare(x, y)
    if pair is None:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = test(*pair)
    return float(result.statistic), float(result.pvalue)


def pearson(x, y) -> tuple[float, float]:
    """(r, two-sided p) in float64; nan when either side is constant or n < 3."""
    return _correlate(stats.pearsonr, x, y)


def spearman(x, y) -> tuple[float, float]:
    """(rho, two-sided p): Pearson on average ranks, t approximation for p."""
    return _correlate(stats.spearmanr, x, y)
