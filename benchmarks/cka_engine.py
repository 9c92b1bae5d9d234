"""CKA engine vs the authors' approach, side by side, on identical random matrices.

Baseline (what the paper's code does): one numpy float64 feature-space CKA call per (task, layer, pair),
    CKA = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F) on column-centred X, Y.
Engine: analysis.cka — Gram form when n < d, and in the layer-batched run one centred Gram per
(model, layer) shared by the pairs (pretrained, control) and (multitask, control).

Usage: python benchmarks/cka_engine.py [--layers 4] [--repeats 3]
Threads/BLAS come from the environment (OPENBLAS_CORETYPE etc. are left as they are).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.cka import cka_pairs, linear_cka


def naive_feature_space_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The authors' per-pair call, float64 throughout."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def best_of(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: BLAS threads, page faults
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def make_reps(layers: int, n: int, d: int, seed: int) -> dict[str, np.ndarray]:
    """float32 activations (what extraction stores), the models related so CKA is not trivial."""
    rng = np.random.default_rng(seed)
    control = rng.standard_normal((layers, n, d), dtype=np.float32)
    noise = lambda s: s * rng.standard_normal((layers, n, d), dtype=np.float32)
    return {"pretrained": control + noise(1.0), "multitask": control + noise(0.5), "control": control}


def run(n: int, d: int, layers: int, repeats: int) -> None:
    reps = make_reps(layers, n, d, seed=0)
    x, y = reps["multitask"][0], reps["control"][0]
    t_naive, c_naive = best_of(lambda: naive_feature_space_cka(x, y), repeats)
    t_fast, c_fast = best_of(lambda: linear_cka(x, y), repeats)
    print(f"n={n:5d} d={d:5d}  single pair   naive {t_naive * 1e3:8.1f} ms   engine {t_fast * 1e3:7.1f} ms"
          f"   speed-up {t_naive / t_fast:5.1f}x   |dCKA| {abs(c_naive - c_fast):.1e}")

    pairs = [("pretrained", "control"), ("multitask", "control")]

    def naive_batched():
        return {p: np.array([naive_feature_space_cka(reps[p[0]][l], reps[p[1]][l]) for l in range(layers)]) for p in pairs}

    t_nb, v_nb = best_of(naive_batched, max(1, repeats - 2))
    t_fb, v_fb = best_of(lambda: cka_pairs(reps, pairs), repeats)
    diff = max(float(np.abs(v_nb[p] - v_fb[p]).max()) for p in pairs)
    print(f"n={n:5d} d={d:5d}  {layers} layers x {len(pairs)} pairs   naive {t_nb * 1e3:8.1f} ms   "
          f"engine {t_fb * 1e3:7.1f} ms   speed-up {t_nb / t_fb:5.1f}x   max |dCKA| {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for n, d in ((200, 1024), (750, 4096)):
        run(n, d, args.layers, args.repeats)


if __name__ == "__main__":
    main()
