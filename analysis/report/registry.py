"""The report's sections, registered: one builder per section, `@section(order, needs=[frames])`.

A builder takes the `Page` and returns its HTML parts (an empty list when the run has nothing for
it to say). The report draws the sections by `order` (the figures are one section among them), and
the runner loads the frames `sections_needed()` names plus those the figures need
(analysis.figures.registry). A section is drawn even when a frame it reads is missing: it says so
itself, which is part of what the report tells a reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analysis.measures import PAPER_MEASURES
from analysis.roles import FINDINGS, GAPS, LAYER_MAP, MULTITASK

Section = list[str]


@dataclass(frozen=True, eq=False)
class Page(Mapping[str, pl.DataFrame]):
    """What the sections share. It reads as the frames (by name) cut to the primary tuned model's rows
    (primary_view), so a section that reads frames only takes any mapping; `every_model` keeps every
    tuned model's rows, `primary` names the primary measure, `labels` the per-layer measures' axis
    labels, and figures are written under `out_dir`/figures."""

    frames: Mapping[str, pl.DataFrame]
    primary: str = PAPER_MEASURES["similarity"]
    every_model: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    out_dir: Path | None = None

    @classmethod
    def of(cls, frames: Mapping[str, pl.DataFrame], primary: str = PAPER_MEASURES["similarity"],
           labels: Mapping[str, str] | None = None, out_dir: Path | None = None) -> Page:
        return cls(primary_view(frames), primary, dict(frames), dict(labels or {}), out_dir)

    def primary_frame(self, name: str) -> pl.DataFrame | None:
        """The frame's rows of the primary measure (all of it when it has no `measure` column)."""
        frame = self.frames.get(name)
        if frame is None or "measure" not in frame.columns:
            return frame
        return frame.filter(pl.col("measure") == self.primary)

    def __getitem__(self, name: str) -> pl.DataFrame:
        return self.frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class SectionUnit:
    name: str
    order: int
    needs: tuple[str, ...]  # frames it reads (loaded when present; the section says what is missing)
    build: Callable[[Page], Section]


SECTIONS: list[SectionUnit] = []


def section(order: int, needs: Sequence[str] = ()) -> Callable:
    """Register a section builder, drawn at `order` (lower first), reading the frames `needs`."""
    def register(build: Callable[[Page], Section]) -> Callable[[Page], Section]:
        if any(unit.order == order for unit in SECTIONS):
            raise ValueError(f"a report section is already registered at order {order}")
        SECTIONS.append(SectionUnit(build.__name__, order, tuple(needs), build))
        return build
    return register


def ordered() -> list[SectionUnit]:
    """Every registered section, in the report's order."""
    import analysis.report  # noqa: F401  (importing it registers the sections)

    return sorted(SECTIONS, key=lambda unit: unit.order)


def sections_needed() -> tuple[str, ...]:
    """Every frame some registered section reads, in the report's order."""
    return tuple(dict.fromkeys(name for unit in ordered() for name in unit.needs))


def tuned_labels(frames: Mapping[str, pl.DataFrame]) -> list[str]:
    """The tuned experimental models of the run in the frames' order (the primary first); ["multitask"]
    for frames written before the `experimental` column existed."""
    for name in (GAPS, FINDINGS, LAYER_MAP):
        frame = frames.get(name)
        if frame is not None and "experimental" in frame.columns and frame.height:
            return frame["experimental"].unique(maintain_order=True).to_list()
    return [MULTITASK]


def primary_view(frames: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The frames with gaps, layer_map and findings cut to the primary tuned model's rows: every
    section and figure reads one model's gap curve, never a mix of several."""
    primary = tuned_labels(frames)[0]
    view = dict(frames)
    for name in (GAPS, LAYER_MAP, FINDINGS):
        frame = view.get(name)
        if frame is not None and "experimental" in frame.columns:
            view[name] = frame.filter(pl.col("experimental") == primary)
    return view
