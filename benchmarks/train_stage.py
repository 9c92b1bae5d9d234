"""Where a run's training stage spent its job slots: optimizer steps, validation passes, and the rest.

Reads <out>/training.parquet (each model's `step_seconds`, `eval_seconds` and wall `seconds` from its
start to its published adapter, with `started_at` / `finished_at`) and <out>/manifest.json (the train
stage's wall seconds and the config's resources.max_concurrent_jobs). The slot time is the stage's
wall seconds x max_concurrent_jobs; what the models' own wall time leaves of it is worker start-up,
base loading and idle slots; what their wall time holds beyond steps and validation is data
encoding, the engine's set-up, checkpoints and publishing.

    python benchmarks/train_stage.py results/demo
    python benchmarks/train_stage.py results/demo --models     # one line per model as well
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402

from runner.training.launch import slot_use  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="a run's output folder")
    parser.add_argument("--models", action="store_true", help="print one line per model")
    args = parser.parse_args()
    manifest = json.loads((args.out / "manifest.json").read_text())
    wall = manifest["stages"]["train"]["seconds"]
    slots = manifest["config"]["resources"]["max_concurrent_jobs"] or 1
    frame = pl.read_parquet(args.out / "training.parquet").filter(pl.col("trained"))
    use = slot_use(frame, wall, slots)
    jobs = float(frame["seconds"].sum())
    total = use.total
    print(f"train stage {wall:.0f}s x {slots} slots = {total:.0f} slot-s; {frame.height} models")
    print(f"  steps       {use.steps:8.0f}s  {use.steps / total:6.1%}")
    print(f"  validation  {use.validation:8.0f}s  {use.validation / total:6.1%}")
    inside = jobs - use.steps - use.validation
    print(f"  in jobs     {inside:8.0f}s  {inside / total:6.1%}  (encoding, engine set-up, checkpoints, publishing)")
    print(f"  outside     {total - jobs:8.0f}s  {(total - jobs) / total:6.1%}  (worker start-up, base loading, idle slots)")
    print(f"model work (steps + validation): {use.model_work:.1%} of the slot time")
    if args.models:
        first = float(frame["started_at"].min())
        for row in frame.sort("started_at").iter_rows(named=True):
            print(f"  {row['model']:<30} start {row['started_at'] - first:6.0f}s  wall {row['seconds']:6.0f}s  "
                  f"steps {row['step_seconds']:6.0f}s  validation {row['eval_seconds']:5.0f}s  {row['steps']:3d} steps "
                  f"{row['stopped']}")


if __name__ == "__main__":
    main()
