"""CKA as the pipeline computes it vs the authors' approach, side by side, on identical random matrices.

Reference (what the paper's code does): one numpy float64 feature-space CKA call per (task, layer, pair),
    CKA = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F) on column-centred X, Y.
Pipeline: what the analyze stage runs (analysis.frames.task_frames -> analysis.frames.suite):
  single pair   the registered measure, get_measure(name)(x, y): Gram form when n < 2d (analysis.measures.gram);
  one task      pairwise_frame over L layers x {pretrained, multitask} vs control: one View per (model, layer),
                its centred Gram shared by both pairs;
  cross-layer   cross_layer_frame, every layer against every layer: Lx + Ly Grams, then one GEMM.
Each row prints both times, their ratio (reference / pipeline: above 1 means the pipeline is faster) and
the largest difference between the two values.

Usage: python benchmarks/cka_engine.py [--layers 4] [--repeats 3] [--measure linear_cka] [--size N D]
Threads/BLAS come from the environment (OPENBLAS_CORETYPE etc. are left as they are).
This script names measures: like tests and docs, it is allowed to (nothing in analysis/ or runner/ is).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.frames.suite import cross_layer_frame, pairwise_frame  # noqa: E402
from analysis.measures import PAPER_MEASURES, get_measure  # noqa: E402

PAIRS = [("pretrained", "control"), ("multitask", "control")]


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
    noise = lambda s: s * rng.standard_normal((layers, n, d), dtype=np.float32)  # noqa: E731
    return {"pretrained": control + noise(1.0), "multitask": control + noise(0.5), "control": control}


def per_pair(frame, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], np.ndarray]:
    """{pair: values by layer} (or [L, L] by (layer, control_layer)) from a frame of one measure."""
    out = {}
    for e, c in pairs:
        rows = frame.filter((frame["experimental"] == e) & (frame["control"] == c))
        keys = ["layer", "control_layer"] if "control_layer" in frame.columns else ["layer"]
        out[(e, c)] = rows.sort(keys)["value"].to_numpy()
    return out


def report(label: str, n: int, d: int, t_ref: float, t_pipe: float, diff: float) -> None:
    print(f"n={n:5d} d={d:5d}  {label:26s} reference {t_ref * 1e3:9.1f} ms   pipeline {t_pipe * 1e3:8.1f} ms"
          f"   ratio {t_ref / t_pipe:6.1f}x   max |dCKA| {diff:.1e}")


def run(n: int, d: int, layers: int, repeats: int, measure: str) -> None:
    reps = make_reps(layers, n, d, seed=0)
    x, y = reps["multitask"][0], reps["control"][0]
    cka = get_measure(measure)
    t_ref, v_ref = best_of(lambda: naive_feature_space_cka(x, y), repeats)
    t_pipe, v_pipe = best_of(lambda: cka(x, y), repeats)
    report("single pair", n, d, t_ref, t_pipe, abs(v_ref - v_pipe))

    def reference_task():
        return {p: np.array([naive_feature_space_cka(reps[p[0]][l], reps[p[1]][l]) for l in range(layers)]) for p in PAIRS}

    t_ref, v_ref = best_of(reference_task, max(1, repeats - 2))
    t_pipe, frame = best_of(lambda: pairwise_frame("t", "c", reps, PAIRS, [measure]), repeats)
    v_pipe = per_pair(frame, PAIRS)
    diff = max(float(np.abs(v_ref[p] - v_pipe[p]).max()) for p in PAIRS)
    report(f"{layers} layers x {len(PAIRS)} pairs", n, d, t_ref, t_pipe, diff)

    pair = [PAIRS[1]]
    e, c = pair[0]

    def reference_cross():
        return np.array([naive_feature_space_cka(reps[e][i], reps[c][j]) for i in range(layers) for j in range(layers)])

    t_ref, v_ref = best_of(reference_cross, max(1, repeats - 2))
    t_pipe, frame = best_of(lambda: cross_layer_frame("t", "c", reps, pair, [measure]), repeats)
    report(f"cross-layer {layers} x {layers}", n, d, t_ref, t_pipe, float(np.abs(v_ref - per_pair(frame, pair)[(e, c)]).max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", default=PAPER_MEASURES["similarity"],
                        help="the (biased, linear) CKA measure the reference computes")
    parser.add_argument("--size", type=int, nargs=2, metavar=("N", "D"), help="one size instead of the two defaults")
    args = parser.parse_args()
    for n, d in [tuple(args.size)] if args.size else ((200, 1024), (750, 4096)):
        run(n, d, args.layers, args.repeats, args.measure)


if __name__ == "__main__":
    main()
