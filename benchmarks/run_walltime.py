"""Wall time of `layerwise run` from a cold cache, per stage, and of an identical second run.

    python benchmarks/run_walltime.py                       # the demo preset
    python benchmarks/run_walltime.py --set model.inference_dtype=float32   # as on an AVX2-only CPU
    python benchmarks/run_walltime.py --config experiments/tiny.yaml

The first run starts with an empty model/data cache (so the GGUF conversion is included); the
second run reuses everything and shows how much finished work is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(config: Path, out: Path, env: dict, overrides: list[str]) -> float:
    started = time.perf_counter()
    sets = [arg for pair in overrides for arg in ("--set", pair)]
    result = subprocess.run([sys.executable, "-m", "runner", "run", "--config", str(config), "--out", str(out), *sets],
                            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"layerwise run failed:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "experiments" / "demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. --set model.inference_dtype=float32 to time a CPU "
                             "without native bf16 on one that has it")
    parser.add_argument("--keep", type=Path, default=None, help="write the run here and keep it (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layerwise-bench-") as scratch:
        env = dict(os.environ, LAYERWISE_CACHE=str(Path(scratch) / "cache"))
        out = args.keep or Path(scratch) / "out"
        first = run(args.config, out, env, args.overrides)
        stages = json.loads((out / "manifest.json").read_text())["stages"]
        second = run(args.config, out, env, args.overrides)
    print(f"config {args.config.name}: first run {first:.1f} s ({first / 60:.2f} min), cold cache")
    for name, info in stages.items():
        print(f"  {name:<9} {info['seconds']:7.1f} s")
    print(f"  (the rest, {first - sum(i['seconds'] for i in stages.values()):.1f} s: start-up, data, Ray)")
    print(f"second identical run {second:.1f} s; rerun speed-up: {first / second:.1f}x")


if __name__ == "__main__":
    main()
