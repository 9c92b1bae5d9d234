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

pwcca(convention="google_svcca") is google/svcca's compute_pwcca itself (threshold=None: on the
matrices as given, as the original; a threshold: on their principal component scores). Besides the
default's PCA step it differs from the default in two ways: its "directions" are the canonical rotation applied to the
unwhitened centred neurons, coef_xᵀ (X - μ) + μ with coef_x = u.T of svd(Σxx^{-1/2} Σxy Σyy^{-1/2})
(not the whitened canonical variates; the i-th neuron's mean μ_i is added to the i-th direction),
orthonormalised by QR; and its weights take the uncentred neurons. On uncentred data the value then
depends on the sign LAPACK gives each singular vector (the added means do not flip with it), so it
follows the original's arithmetic step for step. Where the original fails it is nan: a matrix with
as many neurons as examples or more (the original asserts fewer, and its covariance has no inverse
square root), a rank-deficient covariance. When the second matrix has fewer neurons the original
indexes acts1 with acts2's mask (an IndexError; google/svcca PR #9 fixes it to acts2): this takes
acts2, as that fix does.
"""

from __future__ import annotations

import numpy as np

from analysis.measures.arrays import as_numpy64
from analysis.measures.pca99 import n_components_for
from analysis.measures.registry import register
from analysis.measures.view import View

SVCCA_REPO = "google/svcca"
_REDUCTION = ("each matrix reduced to its top principal components explaining `threshold` of its variance (SVD of "
              "the column-centred matrix; the smallest k with cumulative ratio >= threshold; as sklearn's "
              "PCA(n_components=threshold), the similarity-repository's pca-var99, up to exact ties)")


def principal_directions(view: View, threshold: float | None) -> np.ndarray:
    """n x k orthonormal directions of the top k components explaining `threshold` of the variance
    (threshold None: every component above round-off)."""
    ev, u = view.basis
    if threshold is None:
        return u
    return u[:, : min(n_components_for(ev, threshold), u.shape[1])]


def _scores(view: View, threshold: float | None) -> np.ndarray:
    """The matrix google/svcca's code is given: as is (threshold None) or its principal component scores."""
    if threshold is None:
        return as_numpy64(view.x)
    u = principal_directions(view, threshold)
    return u * np.sqrt(view.basis[0][: u.shape[1]])


@register(
    "svcca", kind="pairwise", higher_is_similar=True, perfect=1.0,
    description="SVCCA: mean canonical correlation between the top principal components (99% variance) of X and Y",
    meaning="1 = the two principal subspaces coincide; 0 = orthogonal",
    ids={"svcca-var={threshold}-score": {}},
    conventions={"reduction": _REDUCTION, "centring": "columns centred (by the PCA)",
                 "value": "mean of all min(kx, ky) canonical correlations (the original's cca_coef1 mean)"},
    reference=f"{SVCCA_REPO} cca_core.py: get_cca_similarity on the PCA scores, mean of cca_coef1 (the "
              "similarity-repository's svcca-var=0.99-score: preprocessing pca-var99 + svcca/cca)",
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
    ids={"pwcca-var={threshold}-whitened-centered-score": {"convention": "whitened"},
         "pwcca-whitened-centered-score": {"threshold": None, "convention": "whitened"},
         "pwcca-score": {"threshold": None, "convention": "google_svcca"},
         "pwcca-var={threshold}-score": {"convention": "google_svcca"}},
    conventions={
        "reduction": f"threshold: {_REDUCTION}; threshold=None: none (google/svcca's compute_pwcca reduces nothing)",
        "variates": "convention='whitened' (default): the canonical variates, whitened and orthonormal, of the side "
                    "with fewer retained components; 'google_svcca': google/svcca's unwhitened directions "
                    "u.T (X - μ) + μ, QR-orthonormalised, of the side with fewer neurons",
        "weights": "whitened: α_i = Σ_j |<h_i, z_j>| over the centred neurons z_j; google_svcca: over the uncentred "
                   "neurons; normalised to sum 1",
        "ids": "pwcca-score is google/svcca's compute_pwcca as the similarity-repository registers it (svcca/pwcca); "
               "the var= and -whitened-centered ids are this project's spelling",
        "failures": "google_svcca is nan where the original fails: as many neurons as examples or more, a singular "
                    "covariance; its value on uncentred data depends on LAPACK's singular-vector signs",
    },
    reference=f"{SVCCA_REPO} pwcca.py: compute_pwcca (with PR #9's fix, acts2 for the second side) over "
              "cca_core.py: get_cca_similarity; the default whitens the variates and centres the neurons",
)
def pwcca(x: View, y: View, *, threshold: float | None = 0.99, convention: str = "whitened") -> float:
    if convention == "google_svcca":
        return google_pwcca(_scores(x, threshold), _scores(y, threshold))
    if convention != "whitened":
        raise ValueError(f"pwcca: convention must be 'whitened' or 'google_svcca', not {convention!r}")
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


def _inv_sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """google/svcca's positivedef_matrix_sqrt(pinv(Σ)): eigh, then the square roots (nan below 0)."""
    w, v = np.linalg.eigh(np.linalg.pinv(sigma))
    with np.errstate(invalid="ignore"):
        return (v * np.sqrt(w)) @ v.T


def google_pwcca(a: np.ndarray, b: np.ndarray) -> float:
    """google/svcca's compute_pwcca(aᵀ, bᵀ, epsilon=0)[0], with examples as rows; nan where it fails."""
    n, da = a.shape
    db = b.shape[1]
    if da >= n or db >= n or da == 0 or db == 0:
        return float("nan")
    cov = np.cov(a.T, b.T)
    sxx, sxy, syy = cov[:da, :da], cov[:da, da:], cov[da:, da:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))  # the original's rescaling, kept for its round-off
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    arr = _inv_sqrt_psd(sxx) @ sxy @ _inv_sqrt_psd(syy)
    if not np.isfinite(arr).all():
        return float("nan")
    u, rho, vt = np.linalg.svd(arr)
    coef, acts = (u.T, a) if da <= db else (vt, b)
    mean = acts.mean(axis=0)
    dirns = (acts - mean) @ coef.T + mean  # column i: the i-th direction plus the i-th neuron's mean
    p, _ = np.linalg.qr(dirns)
    weights = np.abs(p.T @ acts).sum(axis=1)
    return float(weights / weights.sum() @ np.abs(rho))
