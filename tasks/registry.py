"""Reads registry.yaml into TaskSpecs and resolves task selections ("paper", clusters, names)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import yaml

from tasks.spec import CLUSTER_TITLES, METRICS, HubSource, PackagedSource, TaskSpec

REGISTRY_PATH = Path(__file__).with_name("registry.yaml")

# The authors' list (zsquaredz/layer_by_layer, analysis/flan_tasks.lst), verbatim order.
PAPER_TASKS: tuple[str, ...] = (
    "aeslc", "ag_news_subset", "anli_r1", "anli_r2", "anli_r3", "arc_challenge", "arc_easy",
    "bool_q", "cb", "cnn_dailymail", "cola", "common_gen", "copa", "coqa", "cosmos_qa", "dart",
    "definite_pronoun_resolution", "drop", "e2e_nlg", "fix_punct", "gigaword", "glue_mrpc",
    "glue_qqp", "hellaswag", "imdb_reviews", "math_dataset", "mnli_matched", "mnli_mismatched",
    "multi_news", "multirc", "natural_questions", "newsroom", "openbookqa",
    "opinion_abstracts_idebate", "opinion_abstracts_rotten_tomatoes", "para_crawl_enes",
    "paws_wiki", "piqa", "qnli", "quac", "record", "rte", "samsum", "sentiment140", "snli",
    "squad_v1", "squad_v2", "sst2", "story_cloze", "stsb", "trec", "trivia_qa", "true_case",
    "web_nlg_en", "wic", "wiki_lingua_english_en", "winogrande", "wmt14_enfr",
    "wmt16_translate_csen", "wmt16_translate_deen", "wmt16_translate_fien",
    "wmt16_translate_roen", "wmt16_translate_ruen", "wmt16_translate_tren", "wnli",
    "word_segment", "wsc", "xsum", "yelp_polarity_reviews",
)


class UnknownTaskError(ValueError):
    """A task/cluster name that the registry does not know. The message is one line."""


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


def _packaged(raw: Mapping | None) -> PackagedSource | None:
    if raw is None:
        return None
    known = {"package", "file", "reader", "licence", "note"}
    return PackagedSource(package=raw["package"], file=raw["file"], reader=raw["reader"],
                          args=MappingProxyType({k: v for k, v in raw.items() if k not in known}),
                          licence=raw.get("licence", ""), note=raw.get("note", ""))


def _spec(raw: Mapping, defaults: Mapping) -> TaskSpec:
    entry = {**defaults, **raw}
    options = entry.get("options")
    spec = TaskSpec(
        name=entry["name"],
        cluster=entry["cluster"],
        metric=entry["metric"],
        format=entry["format"],
        options=None if options is None else tuple(str(o) for o in options),
        unseen=bool(entry.get("unseen", False)),
        hub=_hub(entry.get("hub") or {"id": None, "note": "no hub source: real text from source='packaged' only"}),
        submix_name=entry.get("submix"),
        flan_cluster=entry.get("flan", entry["cluster"]),
        generator=entry.get("gen"),
        constants=MappingProxyType(dict(entry.get("const", {}))),
        per_row_options=bool(entry.get("per_row_options", False)),
        doc=entry.get("doc", ""),
        packaged=_packaged(entry.get("packaged")),
        clip=tuple(entry.get("clip", ())),
    )
    if spec.cluster not in CLUSTER_TITLES:
        raise ValueError(f"registry.yaml: task {spec.name!r} has unknown cluster {spec.cluster!r}")
    if spec.metric not in METRICS:
        raise ValueError(f"registry.yaml: task {spec.name!r} has unknown metric {spec.metric!r}")
    if spec.unseen != (spec.cluster == "unseen"):
        raise ValueError(f"registry.yaml: task {spec.name!r}: unseen flag disagrees with its cluster")
    if spec.generator is None and spec.packaged is None:
        raise ValueError(f"registry.yaml: task {spec.name!r} has neither a mini-Flan generator (gen) nor real text (packaged)")
    return spec


@lru_cache(maxsize=1)
def _registry() -> dict[str, TaskSpec]:
    data = yaml.safe_load(REGISTRY_PATH.read_text())
    specs: dict[str, TaskSpec] = {}
    for raw in data["tasks"]:
        spec = _spec(raw, data.get("defaults", {}))
        if spec.name in specs:
            raise ValueError(f"registry.yaml: duplicate task {spec.name!r}")
        specs[spec.name] = spec
    return specs


def all_tasks() -> list[TaskSpec]:
    """Every registered task, in registry order (grouped by cluster)."""
    return list(_registry().values())


def _clusters() -> dict[str, tuple[str, ...]]:
    by_cluster: dict[str, list[str]] = {c: [] for c in CLUSTER_TITLES}
    for spec in all_tasks():
        by_cluster[spec.cluster].append(spec.name)
    return {c: tuple(names) for c, names in by_cluster.items()}


class _Clusters(Mapping[str, tuple[str, ...]]):
    """cluster name -> task names; iterates over cluster names in the paper's order.

    Lazy so that importing tasks does not parse the YAML.
    """

    def __getitem__(self, key: str) -> tuple[str, ...]:
        return _clusters()[key]

    def __iter__(self):
        return iter(CLUSTER_TITLES)

    def __len__(self) -> int:
        return len(CLUSTER_TITLES)

    def __repr__(self) -> str:
        return f"CLUSTERS({dict(self)!r})"


CLUSTERS: Mapping[str, tuple[str, ...]] = _Clusters()

SELECTORS = ("paper", "unseen", "all", "seen", "training", "real")


def _valid_names() -> list[str]:
    return [*SELECTORS, *CLUSTER_TITLES, *_registry()]


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

    Order-preserving and de-duplicated. "paper" is the authors' 69 tasks; "all" adds the real-text
    stand-ins; "seen"/"training" are every task outside the unseen cluster; "real" is every task
    with real text in a package (tasks.source: packaged).
    """
    if isinstance(selection, str):
        selection = [selection]
    reg = _registry()
    out: dict[str, TaskSpec] = {}
    for item in selection:
        key = str(item).strip()
        if key in ("paper", "all"):
            names: Sequence[str] = [n for n in reg if n in PAPER_TASKS] if key == "paper" else list(reg)
        elif key in ("seen", "training"):
            names = [n for n, s in reg.items() if not s.unseen]
        elif key == "real":
            names = [n for n, s in reg.items() if s.packaged is not None]
        elif key in CLUSTER_TITLES:
            names = _clusters()[key]
        elif key in reg:
            names = [key]
        else:
            raise _unknown(key)
        for n in names:
            out.setdefault(n, reg[n])
    return list(out.values())
