"""Pure analysis: arrays and frames in, frames and files out (no Ray, no models).

The sub-packages follow the data, each reading only the ones before it:

    measures/   one similarity between two models' rows (registered; ids, maths in gram/arrays)
    frames/     one task's measured frames from aligned activations (suite, calibration, scores)
    derived/    frames built from the measured ones (gaps and their floor, layer map, t-SNE, correlations,
                learned verdicts)
    claims/     a verdict on each of the paper's findings, with its CI and noise floor, and its replication
    report/     report.html from the frames (registered sections) and the sweep's page; figures/ draws

Beside them: roles (the vocabulary), derive (every derived frame and claim, built once from the
measured ones), api (compare activations you already have) and plugins (the user's measure modules).

`analysis.compare(reps, tasks, measures=...)` is the entry point for activations you already have
(analysis.api); `analysis.calibrate(measure, x, y, permutations=N, seed=S)` scores one pair of
matrices against its permutation null (analysis.frames.calibration). Both are imported on first use, so
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
        from analysis.frames.calibration import calibrate

        return calibrate
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
