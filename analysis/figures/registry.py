"""The report's figures, registered: one builder per figure, `@figure(stem, needs=[frames])`.

A builder takes the report's `Context` and returns (caption, build) or None when the run has
nothing to draw; `build()` returns the matplotlib Figure. Registration order is the report's order.
The report loops over `FIGURES`; `frames_needed()` names their frames (the runner loads analysis.report.frames_read()).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import polars as pl
from matplotlib.figure import Figure

from analysis.derived.layer_map import has_structure
from analysis.roles import CKA, LAYER_MAP, SEED_BASELINE, UNSEEN

Drawn = tuple[str, Callable[[], Figure]] | None


@dataclass(frozen=True)
class FigureUnit:
    stem: str
    needs: tuple[str, ...]  # frames it reads (it is skipped when one is missing)
    build: Callable[[Context], Drawn]


FIGURES: list[FigureUnit] = []


def figure(stem: str, needs: Sequence[str] = (CKA,)) -> Callable:
    """Register a figure builder under `stem` (its file is figures/<stem>.png)."""
    def register(build: Callable[[Context], Drawn]) -> Callable[[Context], Drawn]:
        if any(unit.stem == stem for unit in FIGURES):
            raise ValueError(f"figure {stem!r} is registered twice")
        FIGURES.append(FigureUnit(stem, tuple(needs), build))
        return build
    return register


def frames_needed() -> tuple[str, ...]:
    """Every frame some registered figure reads, in registration order."""
    from analysis.figures import report_figures  # noqa: F401  (importing it registers the figures)

    return tuple(dict.fromkeys(name for unit in FIGURES for name in unit.needs))


@dataclass(frozen=True)
class Context:
    """What the builders share: the frames, the primary measure, and views every figure reads."""

    frames: Mapping[str, pl.DataFrame]
    primary: str
    labels: Mapping[str, str]

    def primary_frame(self, name: str) -> pl.DataFrame | None:
        frame = self.frames.get(name)
        if frame is None or "measure" not in frame.columns:
            return frame
        return frame.filter(pl.col("measure") == self.primary)

    @cached_property
    def layer_map(self) -> pl.DataFrame | None:
        """The primary measure's layer map, or None where it has no structure above the noise."""
        lm = self.primary_frame(LAYER_MAP)
        return lm if has_structure(lm) else None

    @property
    def floor(self) -> pl.DataFrame | None:
        return self.frames.get(SEED_BASELINE)

    @cached_property
    def seen(self) -> pl.DataFrame:
        return self.frames[CKA].filter(pl.col("cluster") != UNSEEN)

    @cached_property
    def unseen(self) -> pl.DataFrame:
        return self.frames[CKA].filter(pl.col("cluster") == UNSEEN)

    @cached_property
    def clusters(self) -> list[str]:
        return sorted(self.seen["cluster"].unique().to_list())


def drawn(frames: Mapping[str, pl.DataFrame], primary: str,
          labels: Mapping[str, str]) -> list[tuple[str, str, Callable[[], Figure]]]:
    """(stem, caption, build) of every registered figure this run can draw, in order."""
    from analysis.figures import report_figures  # noqa: F401  (importing it registers the figures)

    ctx = Context(frames, primary, labels)
    out = []
    for unit in FIGURES:
        if all(name in frames for name in unit.needs) and (result := unit.build(ctx)) is not None:
            out.append((unit.stem, *result))
    return out
