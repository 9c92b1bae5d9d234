"""Standard measure ids (the similarity-repository convention) and the plain-text record of a measure.

nacloos/similarity-repository (similarity/standardization.py) names a measure by its family and the
choices that change its value, joined by "-", each choice "key=value", a nested choice in
parentheses, and what is returned last:

    cka-kernel=linear-hsic=gretton-score            linear CKA, biased HSIC (Gretton et al., 2005)
    cka-kernel=(rbf-sigma={sigma})-hsic=song-score  RBF CKA with bandwidth sigma, unbiased HSIC (Song et al., 2012)
    svcca-var=0.99-score  ·  pwcca-score  ·  procrustes-score  ·  rsa-rdm=correlation-compare=spearman
    mutual_knn-topk={topk}  ·  cknna-topk={topk}

A registration lists its ids as templates, each mapped to the parameter values it fixes; a
placeholder {p} is a parameter read off the id (a number). Where this project's default differs from
the original implementation, the default's id names the difference and the original's id keeps the
repository's spelling, computing what the repository's callable computes (e.g. pwcca; mutual_knn and
cknna, whose default normalises the rows: -l2norm).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.measures.registry import Measure

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for m in _PLACEHOLDER.finditer(template):
        parts += [re.escape(template[last:m.start()]), f"(?P<{m.group(1)}>{_NUMBER})"]
        last = m.end()
    return re.compile("".join([*parts, re.escape(template[last:])]))


def _typed(value: str, default: Any) -> Any:
    """The id's text as the parameter's type: an int parameter takes only whole numbers."""
    number = float(value)
    if isinstance(default, int) and not isinstance(default, bool):
        if not number.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(number)
    return number


def id_params(measure: Measure, standard_id: str) -> dict[str, Any] | None:
    """The parameter values `standard_id` gives `measure`, or None when it is not one of its ids."""
    for template, fixed in measure.ids.items():
        m = _pattern(template).fullmatch(standard_id)
        if m is None:
            continue
        try:
            read = {k: _typed(v, measure.params[k]) for k, v in m.groupdict().items()}
        except ValueError as err:
            raise KeyError(f"standard id {standard_id!r} ({template}): {err}") from None
        return {**dict(fixed), **read}
    return None


def bind_id(standard_id: str, measures: Iterable[Measure]) -> Measure | None:
    """The registration `standard_id` names, with the id's values as its parameters' defaults."""
    for measure in measures:
        values = id_params(measure, standard_id)
        if values is not None:
            return dataclasses.replace(measure, params={**measure.params, **values}, standard_id=standard_id)
    return None


def check_ids(measure: Measure, registered: Iterable[Measure]) -> None:
    """At registration: an id names only the measure's parameters, and no other measure's id."""
    for template, fixed in measure.ids.items():
        names = set(fixed) | set(_PLACEHOLDER.findall(template))
        unknown = sorted(names - set(measure.params))
        if unknown:
            raise ValueError(f"{measure.name}: id {template!r} sets {unknown}, which are not its parameters")
        for other in registered:
            if template in other.ids:
                raise ValueError(f"{measure.name}: id {template!r} is already {other.name}'s")


def example_ids(measure: Measure) -> list[str]:
    """The ids with each placeholder filled by the parameter's default (left as {p} without one)."""
    out = []
    for template in measure.ids:
        def fill(m: re.Match[str]) -> str:
            default = measure.params.get(m.group(1))
            return m.group(0) if default is None else f"{default:g}" if isinstance(default, float) else str(default)

        out.append(_PLACEHOLDER.sub(fill, template))
    return out


def _values(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"


def describe_measure(measure: Measure) -> str:
    """One plain-text block: name, kind, description, parameters, ids, conventions, what it follows."""
    direction = "" if measure.higher_is_similar is None else (
        ", higher = more similar" if measure.higher_is_similar else ", higher = less similar")
    lines = [f"{measure.name}  ({measure.kind}{direction})", f"  {measure.description}"]
    if measure.standard_id:
        lines.append(f"  as {measure.standard_id}")
    lines.append(f"  parameters: {_values(measure.params)}")
    if measure.ids:
        lines.append("  ids:")
        width = max(len(t) for t in measure.ids)
        lines += [f"    {t:<{width}}  {_values(fixed) if fixed else ''}".rstrip() for t, fixed in measure.ids.items()]
    else:
        lines.append("  ids: none in the similarity-repository convention")
    if measure.conventions:
        lines.append("  conventions:")
        lines += [_wrapped(f"    {key}: {text}") for key, text in measure.conventions.items()]
    lines.append(_wrapped(f"  follows: {measure.reference or 'its definition only (no original code)'}"))
    return "\n".join(lines)


def _wrapped(line: str, width: int = 110) -> str:
    """A long entry over several lines, continuation lines indented under its text (readable in a terminal)."""
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
