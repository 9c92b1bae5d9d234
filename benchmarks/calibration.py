"""The permutation null of a measure with and without Gram reuse (analysis.calibrate).

  reuse:     analysis.calibrate: one View per matrix; each permutation is View.permute, which
             indexes the cached centred Gram (P K Pᵀ) instead of forming it, so a permutation costs
             the measure's pairing step (for linear CKA one n x n inner product);
  recompute: the measure called on (x, y[perm]) for every permutation, as a generic calibration
             wrapper (calibrated-similarity's Algorithm 1) does: a new Gram GEMM and centring per draw.
Both use the same permutations; the script checks that the nulls agree.

Usage: python benchmarks/calibration.py [--measure linear_cka] [--n 64] [--d 640] [--permutations 200]
                                        [--repeats 5] [--threads 1]
Default: linear CKA, n = 64, d = 640 (a Gemma-270M-width layer), P = 200: well under a second.
Try --n 750 --d 4096 for the paper's size. This script names measures (like tests and docs, it may).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.frames.calibration import calibrate  # noqa: E402
from analysis.frames.suite import draw_indices, permutation_null  # noqa: E402
from analysis.measures import View, get_measure  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", default="linear_cka")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--d", type=int, default=640)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as in a Ray task)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.d)).astype(np.float32)
    y = (x @ rng.standard_normal((args.d, args.d)).astype(np.float32) / np.sqrt(args.d)
         + rng.standard_normal((args.n, args.d)).astype(np.float32))
    measure = get_measure(args.measure)
    _, perms = draw_indices(args.n, 0, args.permutations, 0)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        t_reuse, out = best_of(lambda: calibrate(measure, x, y, permutations=args.permutations, seed=0), args.repeats)
        t_recompute, null = best_of(lambda: np.array([measure(x, y[p]) for p in perms]), args.repeats)
    views = {"x": View(x), "y": View(y)}  # the reused null, per permutation, for the check (not timed)
    reused = permutation_null([(measure, measure.resolve_params())], [("x", "y")], views, perms)[0, 0]
    diff = float(np.abs(reused - null).max())
    print(f"{args.measure}, n={args.n}, d={args.d}, P={args.permutations}, BLAS threads {args.threads}, best of {args.repeats}")
    for label, t in (("reuse (View.permute):", t_reuse), ("recompute per draw:", t_recompute)):
        print(f"  {label:22s} {t * 1e3:8.1f} ms  ({t / args.permutations * 1e6:7.1f} us / permutation)")
    print(f"  speed-up {t_recompute / t_reuse:.1f}x; max |null difference| {diff:.1e}; score {out['score']:.4f}, "
          f"null mean {out['null_mean']:.4f}, p {out['p_value']:.4f}, calibrated {out['calibrated']:.4f}")


if __name__ == "__main__":
    main()
