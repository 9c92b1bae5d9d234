"""Pure analysis: arrays and frames in, frames and files out (no Ray, no models).

`analysis.compare(reps, tasks, measures=...)` is the entry point for activations you already have
(analysis.api); it is imported on first use, so `import analysis` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Comparison", "compare"]


def __getattr__(name: str) -> Any:
    if name in __all__:  # lazy: analysis.api pulls in numpy, polars and torch
        from analysis import api

        return getattr(api, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
