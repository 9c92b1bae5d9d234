"""The report's HTML pieces: escaping, numbers, tables, embedded figures and the page style.
Shared by the run's report and the sweep's (analysis.report.sweep)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:left;vertical-align:top}p.warn{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800}"
         "figure{margin:2em 0}img{max-width:100%}figcaption{font-size:0.9em;color:#444}")
VERDICT_STYLE = {"holds": "#d8f0d2", "contradicted": "#f8d4d0", "inconclusive": "#eeeeee"}


def esc(value: object) -> str:
    return html.escape(str(value))


def num(value: object, digits: int = 3) -> str:
    """A float to `digits` significant digits; None as an empty cell; anything else as is."""
    return "" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def table(rows: Iterable[Sequence], head: Sequence[str] | None = None, styles: Sequence[str | None] | None = None) -> str:
    """An HTML table of escaped cells; `styles[i]`, when set, is row i's background colour."""
    h = "".join(f"<th>{esc(c)}</th>" for c in head) if head else ""
    body = []
    for i, r in enumerate(rows):
        style = f" style='background:{styles[i]}'" if styles and styles[i] else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    return f"<table>{'<tr>' + h + '</tr>' if h else ''}{''.join(body)}</table>"


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def figure_html(stem: str, caption: str, image: bytes) -> str:
    """A <figure> with the PNG embedded (base64), so the page is self-contained."""
    return (f"<figure id='{stem}'><img alt='{esc(stem)}' src='data:image/png;base64,"
            f"{base64.b64encode(image).decode('ascii')}'><figcaption><b>{esc(stem)}</b>: "
            f"{esc(caption)}</figcaption></figure>")
