"""CCA-based measures on the principal subspaces of the two matrices.

With n examples and d >= n - 1 features the column spaces of two centred matrices coincide, so plain
CCA is 1 everywhere; both measures therefore first keep each matrix's top principal components
explaining `threshold` of its variance (Raghu et al., 2017, "SVCCA"):

    Ux = the kx leading principal directions of Xc (example space, orthonormal; view.basis)
    ρ  = singular values of Uxᵀ Uy = the canonical correlations of the two reduced matrices
    svcca = mean(ρ)                                  (over min(kx, ky) correlations)
    pwcca = Σ_i α_i ρ_i / Σ_i α_i,  α_i = Σ_j |<h_i, z_j>|   (Morcos et al., 2018)
            h_i: the i-th canonical variate (unit norm, in example space) of the side with fewer
            retained components (as google/svcca's pwcca.py picks the side with fewer neurons),
            z_j: the j-th neuron (centred column) of that side's original matrix.

When the principal subspaces intersect (kx + ky > n - 1 forces it), several canonical correlations
are exactly 1 and the canonical variates inside that block are any orthonormal basis of it; the
L1 weights are not invariant to that choice, so PWCCA is then not unique (the definition's, not the
code's, ambiguity): the value is one valid choice, between min(ρ) and 1.
"""

from __future__ import annotations

import numpy as np

from analysis.measures.pca99 import n_components_for
from analysis.measures.registry import register
from analysis.measures.view import View


def principal_directions(view: View, threshold: float) -> np.ndarray:
    """n x k orthonormal directions of the top k components explaining `threshold` of the variance."""
    ev, u = view.basis
    return u[:, : min(n_components_for(ev, threshold), u.shape[1])]


@register(
    "svcca", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="SVCCA: mean canonical correlation between the top principal components (99% variance) of X and Y",
    meaning="1 = the two principal subspaces coincide; 0 = orthogonal",
)
def svcca(x: View, y: View, *, threshold: float = 0.99) -> float:
    ux, uy = principal_directions(x, threshold), principal_directions(y, threshold)
    if ux.shape[1] == 0 or uy.shape[1] == 0:
        return float("nan")
    rho = np.clip(np.linalg.svd(ux.T @ uy, compute_uv=False), 0.0, 1.0)
    return float(rho.mean())


@register(
    "pwcca", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="PWCCA: canonical correlations weighted by how much of the neurons each canonical variate accounts for",
    meaning="1 = the principal subspaces coincide; weights favour the variates the neurons load on",
)
def pwcca(x: View, y: View, *, threshold: float = 0.99) -> float:
    ux, uy = principal_directions(x, threshold), principal_directions(y, threshold)
    if ux.shape[1] == 0 or uy.shape[1] == 0:
        return float("nan")
    a, rho, bt = np.linalg.svd(ux.T @ uy, full_matrices=False)  # Uxᵀ Uy = A diag(ρ) Bᵀ
    rho = np.clip(rho, 0.0, 1.0)
    if ux.shape[1] <= uy.shape[1]:
        h, neurons = ux @ a, x.features  # canonical variates of X, orthonormal columns
    else:
        h, neurons = uy @ bt.T, y.features
    alpha = np.abs(h.T @ neurons).sum(axis=1)  # α_i = Σ_j |<h_i, z_j>|
    return float(alpha @ rho / alpha.sum())
