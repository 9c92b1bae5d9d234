"""Prompt (dataset) entropy (Skean et al., 2025, "Layer by Layer: Uncovering Hidden Representations").

Matrix-based Rényi entropy of order α of the trace-normalised Gram of the L2-normalised rows:

    A = K / tr(K),  K_ij = cos(x_i, x_j)  (view.cosine),   λ = eigenvalues of A (sum to 1)
    S_α(A) = log(Σ λ_i^α) / (1 - α);   α = 1 (the default): von Neumann, S = -Σ λ_i log λ_i

In nats: 0 when all examples point the same way, log(n) at most (all directions equally used).
"""

from __future__ import annotations

import numpy as np

from analysis.measures.registry import register
from analysis.measures.view import View


@register(
    "prompt_entropy", kind="single",
    description="Matrix-based Renyi entropy (order alpha, default 1 = von Neumann) of the normalised cosine Gram",
    meaning="nats in [0, log n]: low = examples collapse onto few directions, high = spread evenly",
    conventions={"normalisation": "rows L2-normalised (cosine Gram), the Gram divided by its trace",
                 "centring": "none", "units": "nats (natural log)"},
    reference="Skean et al. (2025)'s matrix-based prompt entropy (their code, OFSkean/information_flow, not compared "
              "line by line here)",
)
def prompt_entropy(x: View, *, alpha: float = 1.0) -> float:
    k = x.cosine
    trace = np.trace(k)
    if trace <= 0.0:
        return float("nan")
    lam = np.clip(np.linalg.eigvalsh(k / trace), 0.0, None)
    if alpha == 1.0:
        nz = lam[lam > 0]
        return float(-(nz @ np.log(nz)))
    return float(np.log(np.sum(lam**alpha)) / (1.0 - alpha))
