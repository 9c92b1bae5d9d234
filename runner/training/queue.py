"""The training jobs of one stage as a queue that a few lanes drain, longest first.

A lane is one Ray Train run that trains model after model on one loaded base: it asks the queue
for its next job until none are left. With as many lanes as runs may go at once, no worker starts
more than once, and no slot idles while another lane still has models waiting (a fixed split into
groups leaves one lane trailing when its controls plateau later than the others').

The queue remembers each lane's current job: a lane whose worker group Ray Train restarts asks
again and gets the same job back, so it resumes that job's checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ray

from analysis.roles import MULTITASK

if TYPE_CHECKING:
    from runner.plan import TrainJob


@ray.remote(num_cpus=0)
class JobQueue:
    """One queue per group of lanes (the sweep cells that share a base model and worker shape: its
    lanes train only its jobs, each by the job's own config)."""

    def __init__(self, queues: dict[str, list[TrainJob]]):
        self._pending = {group: list(jobs) for group, jobs in queues.items()}
        self._current: dict[str, TrainJob] = {}
        self._taken: dict[str, list[str]] = {}

    def next(self, group: str, lane: str, finished: str | None = None) -> TrainJob | None:
        """The lane's current job while it is not `finished`, else the group's next pending one (None: drained)."""
        current = self._current.get(lane)
        if current is not None and current.id != finished:
            return current
        pending = self._pending.get(group, [])
        if not pending:
            self._current.pop(lane, None)
            return None
        job = pending.pop(0)
        self._current[lane] = job
        self._taken.setdefault(lane, []).append(job.id)
        return job

    def taken(self, lane: str) -> list[str]:
        """The ids of the jobs this lane took, in order."""
        return list(self._taken.get(lane, []))


def by_expected_work(jobs: list[TrainJob], sizes: dict[str, float]) -> list[TrainJob]:
    """Longest first (E, then the controls by their task's mean example size), so the jobs left for
    the end are the short ones and the lanes finish close together."""
    def work(job: TrainJob) -> float:
        steps = max(job.max_steps if job.role != MULTITASK else job.min_steps, 1)
        mean = sum(sizes.get(task, 1.0) for task in job.tasks) / max(len(job.tasks), 1)
        return steps * job.batch_size * mean

    return sorted(jobs, key=work, reverse=True)
