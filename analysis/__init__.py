"""Pure analysis: arrays and frames in, frames and files out (no Ray, no models).

`analysis.compare(reps, tasks, measures=...)` is the entry point for activations you already have
(analysis.api); `analysis.calibrate(measure, x, y, permutations=N, seed=S)` scores one pair of
matrices against its permutation null (analysis.calibration). Both are imported on first use, so
`import analysis` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Comparison", "calibrate", "compare"]


def __getattr__(name: str) -> Any:
    # Imported on first use: they pull in numpy, polars and torch.
    if name in ("Comparison", "compare"):
        from analysis import api

        return getattr(api, name)
    if name == "calibrate":
        from analysis.calibration import calibrate

        return calibrate
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
