"""An example measure plugin: list it in `analysis.plugins` and its measure in `analysis.measures`.

    analysis:
      plugins: [user_measures]                 # this file's folder on PYTHONPATH
      measures: [linear_cka, loo_ridge_r2]

Linear predictivity (as in Brain-Score and encoding-model work): how much of the control's
representation a ridge regression from the experimental model's predicts for a held-out example.
The leave-one-out residuals of kernel ridge regression have a closed form, so no refitting:
e_i = (y_i - ŷ_i) / (1 - H_ii), H = K (K + λI)⁻¹ with K = Xc Xcᵀ, the centred Gram the view caches.
"""

from __future__ import annotations

import numpy as np

from analysis.measures import View, register


@register(
    "loo_ridge_r2", kind="pairwise", higher_is_similar=True,
    description="leave-one-out ridge R² of y predicted linearly from x (λ = alpha · tr(K)/n)",
    meaning="1 = y is a linear function of x on unseen examples; 0 = no better than y's mean; can be < 0",
)
def loo_ridge_r2(x: View, y: View, *, alpha: float = 1.0) -> float:
    k = x.centered_gram()
    n = k.shape[0]
    lam = alpha * np.trace(k) / n
    hat = k @ np.linalg.inv(k + lam * np.eye(n))
    yc = y.features  # column-centred, float64
    residual = (yc - hat @ yc) / (1.0 - np.diag(hat))[:, None]
    return float(1.0 - (residual ** 2).sum() / (yc ** 2).sum())
