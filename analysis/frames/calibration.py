"""Scores that can be compared across models: a similarity against its own permutation null.

Raw similarity grows with the width of the representations and shrinks with the number of examples:
linear CKA of two independent Gaussian matrices is 0.94 at n=32, d=512 (it tends to 1 as d/n grows),
so a 4096-d model and a 640-d one cannot be compared on raw scores. The permutation null breaks the
row correspondence (the second matrix's rows shuffled) and keeps everything else: widths, spectra,
n. Against it,

    p_value     (1 + #{null at least as similar as the score}) / (1 + P), one-sided
    calibrated  (score - E[null]) / (perfect - E[null])   the chance-adjusted score (adjusted Rand style)

`perfect` is the measure's value for identical representations (Measure.perfect: 1 for every built-in
similarity, so calibrated = (s - m0) / (1 - m0)). The formula is direction-free: for a distance
registered with perfect=0 it is 1 - s / m0. A measure that declares no `perfect` value (a plugin
whose scale is unbounded, say) gets score, null_mean and p_value, and calibrated = nan.
calibrated is 0 on average for unrelated data and 1 for identical data; it is not clipped, so
below-chance scores stay negative and the null's own spread is visible. With little headroom
(1 - m0 small: d >> n for biased CKA) the division amplifies the null's spread: at n=32, d=512 one
draw's calibrated score has a standard deviation of about 0.045 around 0.

This differs from Gröger et al.'s `calibrated-similarity` (Algorithm 1), which subtracts the
(1 - alpha) critical value instead of the null mean and clips to [0, 1]: theirs is 0 for everything
not significant at alpha, ours is unbiased (mean 0 under the null), so means over tasks stay honest.

The engine is analysis.frames.suite's: the same seeded permutations (analysis.frames.suite.draw_indices), the same
permuted views (analysis.measures.View.permute: a permuted Gram is the parent's centred Gram indexed,
P K Pᵀ, never a new GEMM) and the same statistics, so calibrate(measure, x, y, seed=s) equals the row
of pairwise_frame(..., permutations=P, seed=s) for the same matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.frames.suite import adjusted, draw_indices, evaluate_pairs, null_stats, permutation_null
from analysis.measures import Measure, View, measure_info
from analysis.measures.arrays import ArrayLike

__all__ = ["adjusted", "calibrate"]


def calibrate(measure: str | Measure, x: ArrayLike, y: ArrayLike, *, permutations: int = 999, seed: int = 0,
              **params: Any) -> dict[str, float | int]:
    """One pairwise measure of row-aligned x [n, dx] and y [n, dy] against P shuffles of y's rows.

    measure: a registered pairwise name or its Measure; params: the measure's parameters.
    Returns {score, null_mean, null_q95, p_value, calibrated, n_permutations}; score and everything
    after it are nan where the measure is undefined (a constant matrix), calibrated also where the
    measure has no `perfect` value (see the module docstring).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(32, 512)), rng.normal(size=(32, 512))
    >>> from analysis.measures import PAPER_MEASURES
    >>> out = calibrate(PAPER_MEASURES["similarity"], x, y, permutations=99)   # linear CKA
    >>> round(out["score"], 2), abs(out["calibrated"]) < 0.15, out["p_value"] > 0.05
    (0.94, True, True)
    """
    m = measure_info(measure) if isinstance(measure, str) else measure
    if not isinstance(m, Measure) or m.kind != "pairwise":
        raise ValueError(f"calibrate needs a pairwise measure, got {getattr(m, 'name', m)!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise ValueError(f"permutations must be an integer >= 1, got {permutations!r}")
    views = {"x": View(x), "y": View(y)}
    if views["x"].n != views["y"].n:
        raise ValueError(f"x and y must have the same rows (examples): {views['x'].n} != {views['y'].n}")
    chosen, pairs = [(m, m.resolve_params(params))], [("x", "y")]
    _, perms = draw_indices(views["x"].n, 0, permutations, seed)
    score = evaluate_pairs(chosen, pairs, views, views)
    null = permutation_null(chosen, pairs, views, perms)
    perfect = np.nan if m.perfect is None else m.perfect
    stats = null_stats(score, null, np.array([[bool(m.higher_is_similar)]]), np.array([[perfect]]))
    out = {"score": float(score[0, 0])} | {key: float(np.asarray(v).reshape(-1)[0]) for key, v in stats.items()}
    out["n_permutations"] = int(out["n_permutations"])
    return out
