"""Plain references for every registered measure, written straight from each definition in float64
(and checked against the original implementations: Kornblith's demo, platonic-rep, netrep,
rsatoolbox, google/svcca). Shared by the tests and `benchmarks/measures.py`, so a measure has one
reference; `PAIRWISE_REFS` and `SINGLE_REFS` must name every measure `list_measures()` returns."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr


def ref_linear_gram(x):
    x = np.asarray(x, dtype=np.float64)
    return x @ x.T


def centre(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def ref_hsic(k, l, debiased):
    """Biased: tr(KHLH) (Gretton 2005). Debiased: Song et al. (2012) eq. 5 on zero-diagonal K̃, L̃."""
    n = k.shape[0]
    if not debiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return np.trace(k @ h @ l @ h)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def ref_cka_of_grams(k, l, debiased=False):
    return ref_hsic(k, l, debiased) / np.sqrt(ref_hsic(k, k, debiased) * ref_hsic(l, l, debiased))


def ref_rbf_gram(x, threshold):
    d2 = cdist(x, x, "sqeuclidean")
    return np.exp(-d2 / (2.0 * threshold**2 * np.median(d2)))


def ref_linear_cka(x, y):
    return ref_cka_of_grams(x @ x.T, y @ y.T)


def ref_debiased_cka(x, y):
    return ref_cka_of_grams(x @ x.T, y @ y.T, debiased=True)


def ref_rbf_cka(x, y, threshold=1.0, debiased=False):
    return ref_cka_of_grams(ref_rbf_gram(x, threshold), ref_rbf_gram(y, threshold), debiased)


def ref_neighbours(x, k):
    """k nearest rows of each row by cosine, self excluded: a list of sets."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = z @ z.T
    out = []
    for i in range(len(x)):
        order = [j for j in np.argsort(-s[i], kind="stable") if j != i]
        out.append(set(order[:k]))
    return out


def ref_mutual_knn_count(x, y, k=10):
    k = min(k, len(x) - 1)
    return sum(len(a & b) for a, b in zip(ref_neighbours(x, k), ref_neighbours(y, k)))


def ref_mutual_knn(x, y, k=10):
    return ref_mutual_knn_count(x, y, k) / (len(x) * min(k, len(x) - 1))


def ref_cknna(x, y, k=10):
    """minyoungg/platonic-rep metrics.py `cknna` (unbiased), on L2-normalised rows, without its 1e-6."""
    n = len(x)
    kx = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
    ly = (y / np.linalg.norm(y, axis=1, keepdims=True)) @ (y / np.linalg.norm(y, axis=1, keepdims=True)).T

    def hsic_unbiased(a, b):
        at, bt = a.copy(), b.copy()
        np.fill_diagonal(at, 0.0)
        np.fill_diagonal(bt, 0.0)
        return (np.sum(at * bt.T) + at.sum() * bt.sum() / ((n - 1) * (n - 2)) - 2 * np.sum(at @ bt) / (n - 2)) / (n * (n - 3))

    def topk_mask(g):
        h = g.copy()
        np.fill_diagonal(h, -np.inf)
        idx = np.argsort(-h, axis=1)[:, :k]
        m = np.zeros_like(g)
        np.put_along_axis(m, idx, 1.0, axis=1)
        return m

    def sim(a, b):
        mask = topk_mask(a) * topk_mask(b)
        return hsic_unbiased(mask * a, mask * b)

    return sim(kx, ly) / np.sqrt(sim(kx, kx) * sim(ly, ly))


def _platonic_knn(feats, topk):
    """platonic-rep metrics.py compute_nearest_neighbors: (feats @ feats.T), diagonal -1e8, top-k by argsort."""
    g = feats @ feats.T
    np.fill_diagonal(g, -1e8)
    return np.argsort(-g, axis=1, kind="stable")[:, :topk]


def ref_platonic_mutual_knn(x, y, topk=10):
    """platonic-rep AlignmentMetrics.mutual_knn on the rows as given, in numpy: what the similarity-repository's
    platonic/mutual_knn_topk (standard id mutual_knn-topk=10) computes; no normalisation on the way."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    knn_a, knn_b = _platonic_knn(x, topk), _platonic_knn(y, topk)
    n = knn_a.shape[0]
    mask_a, mask_b = np.zeros((n, n)), np.zeros((n, n))
    rows = np.arange(n)[:, None]
    mask_a[rows, knn_a] = 1.0
    mask_b[rows, knn_b] = 1.0
    return ((mask_a * mask_b).sum(axis=1) / topk).mean()


def ref_platonic_cknna(x, y, topk=10):
    """platonic-rep AlignmentMetrics.cknna(unbiased=True) on the rows as given (K = X Xᵀ), in numpy, with its 1e-6
    in the denominator: what the similarity-repository's platonic/cknna_topk (standard id cknna-topk=10) computes."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)

    def hsic_unbiased(a, b):
        at, bt = a.copy(), b.copy()
        np.fill_diagonal(at, 0.0)
        np.fill_diagonal(bt, 0.0)
        return (np.sum(at * bt.T) + at.sum() * bt.sum() / ((n - 1) * (n - 2)) - 2 * np.sum(at @ bt) / (n - 2)) / (n * (n - 3))

    def similarity(k, l):
        masks = []
        for g in (k, l):
            h = g.copy()
            np.fill_diagonal(h, -np.inf)
            m = np.zeros((n, n))
            np.put_along_axis(m, np.argsort(-h, axis=1, kind="stable")[:, :topk], 1.0, axis=1)
            masks.append(m)
        mask = masks[0] * masks[1]
        return hsic_unbiased(mask * k, mask * l)

    kx, ly = x @ x.T, y @ y.T
    return similarity(kx, ly) / (np.sqrt(similarity(kx, kx) * similarity(ly, ly)) + 1e-6)


def ref_variance_spectrum(x):
    """Eigenvalues of the centred data's scatter matrix, descending: the squared singular values of Xc
    (min(n, d) of them)."""
    return np.linalg.svd(centre(x), compute_uv=False) ** 2


def ref_pca_scores(x, threshold):
    """Scores on the top principal components explaining `threshold` of the variance (SVD of Xc)."""
    u, s, _ = np.linalg.svd(centre(x), full_matrices=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(ratio, threshold - 1e-12) + 1)
    return u[:, :k] * s[:k]


def ref_cca(a, b):
    """Canonical correlations and x-side directions, classic form: Σaa^{-1/2} Σab Σbb^{-1/2} = P diag(ρ) Qᵀ."""
    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(w**-0.5) @ v.T

    saa, sbb, sab = a.T @ a, b.T @ b, a.T @ b
    wa, wb = inv_sqrt(saa), inv_sqrt(sbb)
    p, rho, qt = np.linalg.svd(wa @ sab @ wb)
    return rho, wa @ p, wb @ qt.T


def ref_svcca(x, y, threshold=0.99):
    rho, _, _ = ref_cca(ref_pca_scores(x, threshold), ref_pca_scores(y, threshold))
    return rho.mean()


def ref_pwcca(x, y, threshold=0.99):
    """Morcos et al. (2018) as google/svcca pwcca.py: variates of the side with fewer dimensions,
    orthonormalised (QR), weights Σ_neurons |<h_i, z_j>|, normalised."""
    a, b = ref_pca_scores(x, threshold), ref_pca_scores(y, threshold)
    rho, dir_a, dir_b = ref_cca(a, b)
    m = len(rho)
    variates, neurons = (a @ dir_a[:, :m], centre(x)) if a.shape[1] <= b.shape[1] else (b @ dir_b[:, :m], centre(y))
    p, _ = np.linalg.qr(variates)
    weights = np.abs(p.T @ neurons).sum(axis=1)
    return np.sum(weights / weights.sum() * rho)


def ref_rbf_gram_sigma(x, sigma):
    """minyoungg/platonic-rep metrics.py AlignmentMetrics.cka(kernel_metric='rbf'): an absolute bandwidth,
    K = exp(-cdist(x, x)² / (2 rbf_sigma²)) (Kornblith's gram_rbf instead scales σ by the median distance)."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-cdist(x, x) ** 2 / (2 * sigma**2))


def ref_rbf_cka_sigma(x, y, sigma=1.0, debiased=False):
    """platonic-rep's cka / unbiased_cka with kernel_metric='rbf' (hsic_biased / hsic_unbiased), without its
    1e-6 in the denominator."""
    return ref_cka_of_grams(ref_rbf_gram_sigma(x, sigma), ref_rbf_gram_sigma(y, sigma), debiased)


def _google_cca(acts1, acts2):
    """google/svcca cca_core.py get_cca_similarity (epsilon=0), acts shaped (neurons, datapoints):
    u, s, v of svd(Σxx^{-1/2} Σxy Σyy^{-1/2}) after its covariance rescaling, and the neuron means."""
    assert acts1.shape[1] == acts2.shape[1], "dimensions don't match"
    assert acts1.shape[0] < acts1.shape[1], "input must be number of neurons by datapoints"
    numx = acts1.shape[0]
    covariance = np.cov(acts1, acts2)
    sigmaxx, sigmaxy = covariance[:numx, :numx], covariance[:numx, numx:]
    sigmayy = covariance[numx:, numx:]
    xmax, ymax = np.max(np.abs(sigmaxx)), np.max(np.abs(sigmayy))
    sigmaxx, sigmayy, sigmaxy = sigmaxx / xmax, sigmayy / ymax, sigmaxy / np.sqrt(xmax * ymax)

    def positivedef_matrix_sqrt(array):
        w, v = np.linalg.eigh(array)
        return np.dot(v, np.dot(np.diag(np.sqrt(w)), np.conj(v).T))

    invsqrt_xx = positivedef_matrix_sqrt(np.linalg.pinv(sigmaxx))
    invsqrt_yy = positivedef_matrix_sqrt(np.linalg.pinv(sigmayy))
    u, s, v = np.linalg.svd(np.dot(invsqrt_xx, np.dot(sigmaxy, invsqrt_yy)))
    return {"coef_x": u.T, "coef_y": v, "cca_coef1": np.abs(s), "cca_coef2": np.abs(s),
            "neuron_means1": np.mean(acts1, axis=1, keepdims=True), "neuron_means2": np.mean(acts2, axis=1, keepdims=True)}


def ref_google_pwcca(x, y):
    """google/svcca pwcca.py compute_pwcca(x.T, y.T)[0], with PR #9's fix (the second side's directions from
    acts2, where the original indexes acts1 with acts2's mask). Fails (AssertionError) when x has d >= n."""
    acts1, acts2 = np.asarray(x, dtype=np.float64).T, np.asarray(y, dtype=np.float64).T
    sresults = _google_cca(acts1, acts2)
    if acts1.shape[0] <= acts2.shape[0]:  # x_idxs, y_idxs are all True at epsilon = 0
        dirns = np.dot(sresults["coef_x"], acts1 - sresults["neuron_means1"]) + sresults["neuron_means1"]
        coefs, acts = sresults["cca_coef1"], acts1
    else:
        dirns = np.dot(sresults["coef_y"], acts2 - sresults["neuron_means2"]) + sresults["neuron_means2"]
        coefs, acts = sresults["cca_coef2"], acts2
    p, _ = np.linalg.qr(dirns.T)
    weights = np.sum(np.abs(np.dot(p.T, acts.T)), axis=1)
    weights = weights / np.sum(weights)
    return np.sum(weights * coefs)


def ref_sklearn_pca(x, var):
    """The similarity-repository's preprocessing/pca-var99: sklearn PCA(n_components=var).fit_transform."""
    from sklearn.decomposition import PCA

    return PCA(n_components=var).fit_transform(np.asarray(x, dtype=np.float64))


def ref_google_svcca(x, y, var=0.99):
    """The similarity-repository's svcca-var=0.99-score: pca-var99, then google/svcca's get_cca_similarity,
    mean of cca_coef1."""
    a, b = ref_sklearn_pca(x, var), ref_sklearn_pca(y, var)
    return np.mean(_google_cca(a.T, b.T)["cca_coef1"])


def ref_procrustes(x, y):
    xn, yn = centre(x) / np.linalg.norm(centre(x)), centre(y) / np.linalg.norm(centre(y))
    return np.linalg.svd(xn.T @ yn, compute_uv=False).sum()  # ||X̃ᵀỸ||_*


def ref_rsa(x, y):
    iu = np.triu_indices(len(x), 1)
    return spearmanr((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu]).statistic


def ref_pca99(x, threshold=0.99):
    return ref_pca_scores(x, threshold).shape[1]


def ref_twonn(x, discard_fraction=0.1):
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    d.sort(axis=1)
    mu = np.sort(d[:, 1] / d[:, 0])
    n = len(mu)
    keep = int(n * (1 - discard_fraction))
    xs = np.log(mu[:keep])[:, None]
    ys = -np.log(1 - np.arange(keep) / n)
    return np.linalg.lstsq(xs, ys, rcond=None)[0][0]  # slope through the origin


def ref_prompt_entropy(x, alpha=1.0):
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    k = z @ z.T
    lam = np.linalg.eigvalsh(k / np.trace(k))
    lam = lam[lam > 1e-15]
    return -np.sum(lam * np.log(lam)) if alpha == 1 else np.log(np.sum(lam**alpha)) / (1 - alpha)


def ref_massive_ratio(x):
    return np.abs(x).max() / np.median(np.abs(x))


PAIRWISE_REFS = {"linear_cka": ref_linear_cka, "debiased_cka": ref_debiased_cka, "rbf_cka": ref_rbf_cka,
                 "mutual_knn": ref_mutual_knn, "cknna": ref_cknna, "svcca": ref_svcca, "pwcca": ref_pwcca,
                 "procrustes": ref_procrustes, "rsa": ref_rsa}
SINGLE_REFS = {"pca99": ref_pca99, "twonn_id": ref_twonn, "prompt_entropy": ref_prompt_entropy,
               "massive_ratio": ref_massive_ratio}
