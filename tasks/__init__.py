"""The Flan 2021 task suite of the paper: registry, templates, sources, splits, mixture, stats.

Pure data: no Ray, no models, no network at import time. See docs/interfaces.md ("tasks/").
"""

from tasks import templates
from tasks.catalog import catalog
from tasks.mixture import build_mixture, cap_train_sets, cluster_caps, mixing_rates
from tasks.preview import preview
from tasks.registry import CLUSTERS, PAPER_TASKS, UnknownTaskError, all_tasks, get_task, include, resolve_tasks
from tasks.sources import SOURCES, TaskSourceError
from tasks.spec import CLUSTER_TITLES, HubSource, TaskFileError, TaskSpec, cluster_title
from tasks.splits import TaskSplits, load_splits
from tasks.stats import task_statistics

__all__ = [
    "CLUSTERS",
    "CLUSTER_TITLES",
    "PAPER_TASKS",
    "SOURCES",
    "HubSource",
    "TaskFileError",
    "TaskSourceError",
    "TaskSpec",
    "TaskSplits",
    "UnknownTaskError",
    "all_tasks",
    "build_mixture",
    "cap_train_sets",
    "catalog",
    "cluster_title",
    "cluster_caps",
    "get_task",
    "include",
    "load_splits",
    "mixing_rates",
    "preview",
    "resolve_tasks",
    "task_statistics",
    "templates",
]
