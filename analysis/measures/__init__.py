"""Similarity and per-layer measures: a registry plus one module per measure (the peft lesson).

    from analysis.measures import get_measure, list_measures, measure_info
    get_measure("linear_cka")(x, y)          # pairwise: two row-aligned n x d matrices -> float
    get_measure("pca99")(x, threshold=0.95)   # single: one matrix -> float
    get_measure("cka-kernel=linear-hsic=song-score")(x, y)   # a standard id (analysis.measures.ids)
    print(describe())                         # every measure: ids, conventions, the code it follows

To add a measure: write a module here with a function on views decorated by @register, and import
it below. Nothing else names it. Not measures: registry and ids (the records), view (the per-matrix
cache), arrays (inputs and centring) and gram (Gram matrices, kernels, HSIC centring), the maths
every measure shares.
"""

from analysis.measures.registry import (
    DEFAULT_MEASURES,
    PAPER_MEASURES,
    Kind,
    Measure,
    Selection,
    describe,
    get_measure,
    list_measures,
    measure_info,
    register,
    resolve,
)
from analysis.measures.view import View, standardize

# Importing a measure module registers its measures, in this order (list_measures' order per kind).
# isort: off
from analysis.measures import cka, knn, cca, procrustes, rsa  # noqa: F401, E402
from analysis.measures import pca99, twonn, entropy, massive  # noqa: F401, E402
# isort: on

__all__ = [
    "DEFAULT_MEASURES", "PAPER_MEASURES", "Kind", "Measure", "Selection", "View", "describe", "get_measure", "list_measures",
    "measure_info", "register", "resolve", "standardize",
]
