"""Pure analysis: arrays and frames in, frames and files out (no Ray, no models).

`analysis.compare(reps, tasks, measures=...)` is the entry point for activations you already have
(analysis.api); `analysis.calibrate(measure, x, y, permutations=N, seed=S)` scores one pair of
matrices against its permutation null (analysis.calibration). Both are imported on first use, so
`import analysis` stays cheap.
"""

from __future__ import annotations

from typing import Any

# name -> the module that defines it, imported on first use (they pull in numpy, polars and torch)
_LAZY = {"Comparison": "api", "compare": "api", "calibrate": "calibration"}
__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"analysis.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
