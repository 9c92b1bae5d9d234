"""The shape of one registry entry. Pure data: no I/O, no network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

METRICS = ("accuracy", "rouge_l", "bleu")

# The paper's 12 clusters (Table 1), in the paper's order. Keys are the names used in
# configs; values are the display titles used in figures and the CLI.
CLUSTER_TITLES: dict[str, str] = {
    "nli": "Natural language inference",
    "commonsense": "Commonsense reasoning",
    "closed_book_qa": "Closed-book QA",
    "coreference": "Coreference resolution",
    "struct_to_text": "Struct to text",
    "translation": "Translation",
    "summarization": "Summarization",
    "reading_comprehension": "Reading comprehension",
    "sentiment": "Sentiment analysis",
    "paraphrase": "Paraphrase detection",
    "reading_comprehension_commonsense": "Reading comprehension with commonsense",
    "unseen": "Unseen",
}


class TaskFileError(ValueError):
    """A task file (registry.yaml or a user's) or its rows cannot be used. One line naming the file
    and the entry, saying what to fix."""


def cluster_title(cluster: str) -> str:
    """The display title of a cluster: the paper's, else derived from a user's cluster name."""
    return CLUSTER_TITLES.get(cluster) or cluster.replace("_", " ").replace("-", " ").strip().capitalize()


@dataclass(frozen=True)
class HubSource:
    """Where a task lives on the Hugging Face hub and how its rows map to template fields.

    `fields` maps a canonical template field to a path in the hub row ("a.b", "a[0]").
    `label` is the path of an integer class id; `label_map` re-orders hub ids onto the
    task's `options` (options are kept in one semantic order per format). `adapter`
    names a function in tasks.adapters for rows that a path cannot express.
    """

    id: str | None
    config: str | None = None
    splits: Mapping[str, str] = field(default_factory=dict)  # role -> hub split name
    revision: str | None = None  # "refs/convert/parquet" where the repo ships a script
    fields: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None
    label_map: Mapping[int, int] | None = None
    adapter: str | None = None
    note: str | None = None  # e.g. "manual download", "no public copy"


@dataclass(frozen=True)
class PackagedSource:
    """Where a task's real text lives inside a package on PyPI, and how to read it.

    `package` names an entry of tasks/packaged/packages.yaml, `file` the file (or folder) inside
    it, `reader` a function of tasks.packaged.readers; `args` are that reader's keyword arguments.
    `licence` is the data's licence; `note` says why the fit to the paper's task is loose;
    `derived` (non-empty: why) marks a task built from real text by a rule of ours (pairs, concepts)
    rather than a dataset's own examples.
    """

    package: str
    file: str
    reader: str
    args: Mapping[str, Any] = field(default_factory=dict)
    licence: str = ""
    note: str = ""
    derived: str = ""


@dataclass(frozen=True)
class FileSource:
    """A user's task read from local files (JSONL, CSV or Parquet, by extension).

    `files` maps a split role (train, validation, test) to an absolute path; `fields` maps a template
    field to a column; `target` names the answer's column (for classification: an option's text or
    its index); `options` the column of per-row choices, if any. `origin` is the task YAML."""

    files: Mapping[str, str]
    fields: Mapping[str, str]
    target: str
    options: str | None = None
    origin: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    cluster: str
    metric: str  # "accuracy" | "rouge_l" | "bleu"
    format: str  # key into the template bank
    options: tuple[str, ...] | None  # fixed answer set; None if free text or per-row options
    unseen: bool
    hub: HubSource
    submix_name: str | None  # task_name prefix in DataProvenanceInitiative/flan2021_submix_original
    flan_cluster: str  # FLAN 2021's own cluster name, kept for provenance
    generator: str | None  # offline mini-Flan generator; None: the task exists only as real text
    constants: Mapping[str, Any] = field(default_factory=dict)  # fixed template fields
    per_row_options: bool = False  # options differ per example (ARC, COPA, ...)
    doc: str = ""
    # Real text inside packages: every source in order of preference (registry `packaged:`, a
    # mapping or a list), and `packaged`, the one in use: the first, until tasks.packaged picks the
    # first one that is built, cached or still served (tasks.packaged.build.chosen).
    packaged_sources: tuple[PackagedSource, ...] = ()
    packaged: PackagedSource | None = None
    # The long-context fields (an article, a passage) that tasks.max_words may cut to their lead.
    # Every other field stays whole: cutting a question, a sentence with a blank or one side of a
    # translation pair would change the task, so those are bounded by choosing rows instead.
    clip: tuple[str, ...] = ()
    # A user's task: rows from local files (always, whatever tasks.source is) and its own templates
    # ((prompt, target) format strings) in place of the bank's `format` family.
    files: FileSource | None = None
    templates: tuple[tuple[str, str], ...] | None = None
    origin: str = "registry.yaml"  # the YAML file the entry came from, for error messages

    @property
    def hub_id(self) -> str | None:
        return self.hub.id

    @property
    def is_classification(self) -> bool:
        return self.options is not None or self.per_row_options
