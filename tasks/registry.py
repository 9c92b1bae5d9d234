"""Reads registry.yaml into TaskSpecs and resolves task selections ("paper", clusters, names)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import yaml

from tasks.entry import parse_entry
from tasks.spec import CLUSTER_TITLES, TaskFileError, TaskSpec

REGISTRY_PATH = Path(__file__).with_name("registry.yaml")
PAPER_TASKS_PATH = Path(__file__).with_name("paper_tasks.yaml")

# The authors' list (zsquaredz/layer_by_layer, analysis/flan_tasks.lst), verbatim order; data in paper_tasks.yaml.
PAPER_TASKS: tuple[str, ...] = tuple(yaml.safe_load(PAPER_TASKS_PATH.read_text())["paper_tasks"])

# The user's task files (tasks.include) that join the registry in this process; see `include`.
_included: tuple[Path, ...] = ()


class UnknownTaskError(ValueError):
    """A task/cluster name that the registry does not know. The message is one line."""


def include(paths: Sequence[str | Path]) -> None:
    """Make the tasks of these YAML files (a folder: every *.yaml in it) part of the registry, in
    place of any included before. Lazy: the files are read on the first lookup, so a process that
    never looks a task up (a Ray worker handed rendered rows) never reads them."""
    global _included
    resolved = tuple(Path(p).expanduser().resolve() for p in paths)
    if resolved != _included:
        _included = resolved
        _registry.cache_clear()


def included() -> tuple[Path, ...]:
    """The paths passed to the last `include`, absolute."""
    return _included


def task_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML files behind tasks.include: files as given, folders expanded to their *.yaml."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise TaskFileError(f"tasks.include: {path}: no *.yaml task files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise TaskFileError(f"tasks.include: {path}: no such file or folder; pass task YAML files or folders of them")
    return list(dict.fromkeys(files))


def _read(path: Path, user: bool) -> list[TaskSpec]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise TaskFileError(f"{path}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("tasks"), list):
        raise TaskFileError(f"{path}: expected a mapping with a tasks: list (the schema of tasks/registry.yaml)")
    defaults = data.get("defaults") or {}
    return [parse_entry(raw, defaults, path, user) for raw in data["tasks"]]


@lru_cache(maxsize=1)
def _registry() -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    sources = [(REGISTRY_PATH, False)] + [(path, True) for path in task_files(_included)]
    for path, user in sources:
        for spec in _read(path, user):
            if user and (spec.name in SELECTORS or spec.name in CLUSTER_TITLES):
                raise TaskFileError(f"{path}: task {spec.name!r}: the name is a selector or a cluster; rename the task")
            if spec.name in specs:
                other = specs[spec.name].origin
                raise TaskFileError(f"{path}: task {spec.name!r} is already defined in {other}; rename one of them")
            specs[spec.name] = spec
    return specs


def all_tasks() -> list[TaskSpec]:
    """Every registered task, in registry order (grouped by cluster)."""
    return list(_registry().values())


def cluster_names() -> list[str]:
    """The paper's 12 clusters in the paper's order, then the user's own in order of appearance."""
    return list(dict.fromkeys([*CLUSTER_TITLES, *(spec.cluster for spec in all_tasks())]))


def _clusters() -> dict[str, tuple[str, ...]]:
    by_cluster: dict[str, list[str]] = {c: [] for c in cluster_names()}
    for spec in all_tasks():
        by_cluster[spec.cluster].append(spec.name)
    return {c: tuple(names) for c, names in by_cluster.items()}


class _Clusters(Mapping[str, tuple[str, ...]]):
    """cluster name -> task names; iterates over the paper's clusters in its order, then the user's own.

    Lazy so that importing tasks does not parse the YAML.
    """

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return _clusters()[key]

    def __iter__(self):
        return iter(cluster_names())

    def __len__(self) -> int:
        return len(cluster_names())

    def __repr__(self) -> str:
        return f"CLUSTERS({dict(self)!r})"


CLUSTERS: Mapping[str, tuple[str, ...]] = _Clusters()

SELECTORS = ("paper", "unseen", "all", "seen", "training", "real")


def _valid_names() -> list[str]:
    return [*SELECTORS, *cluster_names(), *_registry()]


def _unknown(name: str) -> UnknownTaskError:
    close = difflib.get_close_matches(name, _valid_names(), n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UnknownTaskError(f"unknown task or cluster {name!r}{hint} (see `layerwise tasks`)")


def get_task(task: str | TaskSpec) -> TaskSpec:
    """The spec of one task by name; raises UnknownTaskError with the closest name."""
    if isinstance(task, TaskSpec):
        return task
    try:
        return _registry()[task]
    except KeyError:
        raise _unknown(str(task)) from None


def resolve_tasks(selection: Sequence[str] | str) -> list[TaskSpec]:
    """Expand task names, cluster names, "paper", "unseen", "seen"/"training", "real" and "all".

    Order-preserving and de-duplicated. "paper" is the authors' list (paper_tasks.yaml); "all" adds the real-text
    stand-ins; "seen"/"training" are every task outside the unseen cluster; "real" is every task
    with real text in a package (tasks.source: packaged).
    """
    if isinstance(selection, str):
        selection = [selection]
    reg, clusters = _registry(), _clusters()
    out: dict[str, TaskSpec] = {}
    for item in selection:
        key = str(item).strip()
        if key in ("paper", "all"):
            names: Sequence[str] = [n for n in reg if n in PAPER_TASKS] if key == "paper" else list(reg)
        elif key in ("seen", "training"):
            names = [n for n, s in reg.items() if not s.unseen]
        elif key == "real":
            names = [n for n, s in reg.items() if s.packaged is not None]
        elif key in clusters:
            names = clusters[key]
        elif key in reg:
            names = [key]
        else:
            raise _unknown(key)
        for n in names:
            out.setdefault(n, reg[n])
    return list(out.values())
