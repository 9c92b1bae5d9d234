"""The report's figures section: every registered figure (analysis.figures.registry) the run's
frames can draw, written to <out>/figures/<stem>.png and embedded in the page."""

from __future__ import annotations

from pathlib import Path

from analysis.figures.registry import drawn
from analysis.report.html import figure_html, png
from analysis.report.registry import Page, Section, section


@section(90)  # its frames are the figures' own (frames_needed)
def figures_section(page: Page) -> Section:
    parts = ["<h2 id='figures'>Figures</h2>"]
    fig_dir = None if page.out_dir is None else Path(page.out_dir) / "figures"
    for stem, caption, build in drawn(page, page.primary, page.labels):
        image = png(build())
        if fig_dir is not None:  # a page without a folder embeds its figures only
            fig_dir.mkdir(parents=True, exist_ok=True)
            (fig_dir / f"{stem}.png").write_bytes(image)
        parts.append(figure_html(stem, caption, image))
    return parts
