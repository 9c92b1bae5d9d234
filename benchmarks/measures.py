"""Every registered measure through the frames vs a straightforward per-pair implementation.

The problem is one task of the paper: L layers x {pretrained, multitask} x control (pairwise measures)
or L layers x 3 models (single measures), float32 activations with a few massive dimensions.
  reference: tests/references.py (the tests' own references, one per measure): one plain float64
             function per (pair, layer), written from the definition, nothing shared between pairs
             or measures;
  engine:    analysis.frames.suite.pairwise_frame / single_frame, one View per (model, layer) whose Grams,
             spectra, neighbour sets and ranks every pair (and, in the "all" row, every measure) shares.

Usage: python benchmarks/measures.py [--full] [--layers L --n N --d D] [--ref-layers K] [--measures a,b]
                                    [--threads T] [--resample R]
Default: a small problem (4 layers, n = 750, d = 1024: about a minute); --full: 33 layers, n = 750, d = 4096 (~10 minutes on one
core), where the reference is timed on --ref-layers layers (default 2) and scaled to L (marked "~").
BLAS runs on --threads threads (default 1): what a Ray task with num_cpus=1 gets (Ray sets
OMP_NUM_THREADS), and the only setting that times reliably on a shared machine, where a
multi-threaded LAPACK eigh can stall 10-100x waiting for a busy core.
This script names measures: like tests and docs, it is allowed to (nothing in analysis/ or runner/ is).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.frames.suite import pairwise_frame, single_frame  # noqa: E402
from analysis.measures import list_measures, measure_info  # noqa: E402
from tests.references import PAIRWISE_REFS, SINGLE_REFS  # noqa: E402

PAIRS = [("pretrained", "control"), ("multitask", "control")]

# ---------------------------------------------------------------- straightforward references (per pair, float64)


# One reference per measure, shared with the tests.
REFERENCES = {**PAIRWISE_REFS, **SINGLE_REFS}

# ---------------------------------------------------------------- the run


def make_reps(layers: int, n: int, d: int, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 activations (what extraction stores): a shared low-rank signal, model-specific noise,
    and 4 massive dimensions (x50, offset 100), as LLM residual streams have."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((layers, n, 64), dtype=np.float32) @ rng.standard_normal((64, d), dtype=np.float32) / 4
    control = signal + rng.standard_normal((layers, n, d), dtype=np.float32)
    control[:, :, :4] = 50 * control[:, :, :4] + 100
    noise = lambda s: s * rng.standard_normal((layers, n, d), dtype=np.float32)  # noqa: E731
    return {"pretrained": control + noise(1.0), "multitask": control + noise(0.5), "control": control}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def reference_values(name: str, reps: dict[str, np.ndarray], ref_layers: int) -> tuple[float, np.ndarray]:
    """Seconds and values [units, ref_layers] of the reference, pair by pair (or model by model)."""
    ref = REFERENCES[name]
    if measure_info(name).kind == "pairwise":
        units = [(lambda l, e=e, c=c: ref(reps[e][l], reps[c][l])) for e, c in PAIRS]
    else:
        units = [(lambda l, m=m: ref(reps[m][l])) for m in reps]
    return timed(lambda: np.array([[u(layer) for layer in range(ref_layers)] for u in units], dtype=np.float64))


def engine_values(names: list[str], kind: str, reps: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    if kind == "pairwise":
        seconds, frame = timed(lambda: pairwise_frame("t", "c", reps, PAIRS, names))
        order = [("experimental", e) for e, _ in PAIRS]
    else:
        seconds, frame = timed(lambda: single_frame("t", "c", reps, names))
        order = [("model", m) for m in reps]
    out = {}
    for name in names:
        rows = frame.filter(frame["measure"] == name)
        out[name] = np.array([rows.filter(rows[col] == val).sort("layer")["value"].to_numpy() for col, val in order])
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the paper's size: 33 layers, n=750, d=4096")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--d", type=int)
    parser.add_argument("--ref-layers", type=int, help="layers the reference is timed on (then scaled to all)")
    parser.add_argument("--measures", help="comma-separated subset of the registered measures")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1, as in a Ray task)")
    parser.add_argument("--resample", type=int, default=0,
                        help="also time R half-samples + R permutations per pairwise measure (reference: from scratch per draw)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        run(args)


def run(args: argparse.Namespace) -> None:
    layers, n, d = (33, 750, 4096) if args.full else (4, 750, 1024)
    layers, n, d = args.layers or layers, args.n or n, args.d or d
    ref_layers = min(args.ref_layers or (2 if args.full else layers), layers)
    names = args.measures.split(",") if args.measures else list_measures()
    reps = make_reps(layers, n, d)
    print(f"{'full (paper)' if args.full else 'small (default; --full for the paper size)'} problem: "
          f"{layers} layers, n={n}, d={d}, float32; pairwise: {len(PAIRS)} pairs x {layers} layers, "
          f"single: {len(reps)} models x {layers} layers; BLAS threads: {args.threads}")
    if ref_layers < layers:
        print(f"reference timed on {ref_layers} layer(s) and scaled x{layers / ref_layers:.1f} (marked ~)")
    print(f"{'measure':16s} {'reference':>11s} {'engine':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    for kind in ("pairwise", "single"):
        chosen = [m for m in names if measure_info(m).kind == kind]
        if not chosen:
            continue
        total_ref = 0.0
        for name in chosen:
            t_ref, v_ref = reference_values(name, reps, ref_layers)
            t_ref *= layers / ref_layers
            total_ref += t_ref
            t_eng, v_eng = engine_values([name], kind, reps)
            diff = float(np.nanmax(np.abs(v_eng[name][:, :ref_layers] - v_ref)))
            mark = "~" if ref_layers < layers else " "
            print(f"{name:16s} {mark}{t_ref:9.2f}s {t_eng:8.2f}s {t_ref / t_eng:8.1f}x {diff:11.1e}")
        t_all, _ = engine_values(chosen, kind, reps)
        print(f"{'all ' + kind:16s} {' ' if ref_layers == layers else '~'}{total_ref:9.2f}s {t_all:8.2f}s "
              f"{total_ref / t_all:8.1f}x   (one frame with every {kind} measure: Views shared across measures)")
    if args.resample:
        resampling(names, reps, args.resample, ref_layers)


def resampling(names: list[str], reps: dict[str, np.ndarray], draws: int, ref_layers: int) -> None:
    """R half-samples + R permutations per (pair, layer): the engine indexes and permutes each view's
    cached quantities; the reference recomputes the measure on every resampled pair (timed on
    min(R, 3) draws of each kind and ref_layers layers, then scaled)."""
    layers, n = next(iter(reps.values())).shape[:2]
    rng = np.random.default_rng(0)
    ref_draws = min(draws, 3)
    print(f"\nresampling: {draws} half-samples + {draws} permutations per (pair, layer); "
          f"reference timed on {ref_draws}+{ref_draws} draws x {ref_layers} layer(s), scaled (~)")
    print(f"{'measure':16s} {'reference':>11s} {'engine':>9s} {'speed-up':>9s}")
    for name in [m for m in names if measure_info(m).kind == "pairwise"]:
        ref = REFERENCES[name]

        def reference(ref=ref):
            for _ in range(ref_draws):
                idx, perm = rng.choice(n, size=n // 2, replace=False), rng.permutation(n)
                for e, c in PAIRS:
                    for layer in range(ref_layers):
                        ref(reps[e][layer][idx], reps[c][layer][idx])
                        ref(reps[e][layer], reps[c][layer][perm])

        t_ref = timed(reference)[0] * (draws / ref_draws) * (layers / ref_layers)
        t_base = timed(lambda name=name: pairwise_frame("t", "c", reps, PAIRS, [name]))[0]
        t_eng = timed(lambda name=name: pairwise_frame("t", "c", reps, PAIRS, [name], bootstrap=draws,
                                                       permutations=draws))[0]
        t_eng -= t_base  # the resampling alone
        print(f"{name:16s} ~{t_ref:9.2f}s {t_eng:8.2f}s {t_ref / t_eng:8.1f}x")


if __name__ == "__main__":
    main()
