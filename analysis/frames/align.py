"""Row alignment of representations from several models, by example id, with one joint mask.

CKA compares row i of one model with row i of another, so rows must be the same examples in the same
order. The authors dropped non-finite rows from each model separately, which silently shifts every
later row of one matrix against the other. Here the mask is computed jointly: an example is dropped
from every model as soon as it is non-finite in any model at any layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch


def as_numpy(a: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy array of `a` (a tensor is detached and moved to the CPU; bfloat16 becomes float32)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.dtype == torch.bfloat16:  # numpy has no bfloat16
            a = a.to(torch.float32)
        return a.numpy()
    return np.asarray(a)


def _finite_rows(a: np.ndarray) -> np.ndarray:
    """bool [n]: row finite at every layer and every feature (one layer at a time, to bound memory)."""
    ok = np.ones(a.shape[1], dtype=bool)
    for layer in range(a.shape[0]):
        ok &= np.isfinite(a[layer]).all(axis=1)
    return ok


def align_and_mask(
    reps: Mapping[str, tuple[Sequence[str], np.ndarray | torch.Tensor]],
) -> tuple[list[str], dict[str, np.ndarray], int]:
    """Inner-join models on example id and drop every example non-finite anywhere.

    reps: model -> (example_ids, array [L, n_model, d_model]); L and d may differ between models.
    Returns (kept ids sorted, model -> array [L, n, d_model] in that id order, n_dropped) where
    n_dropped counts the joined examples removed by the joint non-finite mask (examples missing from
    some model are not counted: they were never comparable).
    """
    if not reps:
        raise ValueError("align_and_mask needs at least one model")
    positions: dict[str, dict[str, int]] = {}
    arrays: dict[str, np.ndarray] = {}
    for model, (ids, array) in reps.items():
        array = as_numpy(array)
        ids = [str(i) for i in ids]
        if array.ndim != 3 or array.shape[1] != len(ids):
            raise ValueError(f"{model}: expected array [L, {len(ids)}, d] for {len(ids)} ids, got {array.shape}")
        pos = {example: i for i, example in enumerate(ids)}
        if len(pos) != len(ids):
            raise ValueError(f"{model}: duplicate example ids")
        positions[model], arrays[model] = pos, array

    common = sorted(set.intersection(*(set(p) for p in positions.values())))
    rows = {m: np.fromiter((positions[m][e] for e in common), dtype=np.intp, count=len(common)) for m in reps}

    keep = np.ones(len(common), dtype=bool)
    for model, array in arrays.items():
        keep &= _finite_rows(array)[rows[model]]

    kept_ids = [e for e, k in zip(common, keep) if k]
    aligned = {m: np.ascontiguousarray(arrays[m][:, rows[m][keep], :]) for m in reps}
    return kept_ids, aligned, int((~keep).sum())
