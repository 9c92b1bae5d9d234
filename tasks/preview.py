"""A task's templates rendered on real examples, for `layerwise tasks --preview`."""

from __future__ import annotations

from tasks.registry import get_task
from tasks.spec import TaskSpec
from tasks.splits import load_splits
from tasks.templates import template_pairs


def preview(task: str | TaskSpec, n: int = 3, source: str = "offline") -> str:
    """The first n examples of the task's training split, one per template, as text."""
    spec = get_task(task)
    train = load_splits(spec, source=source, probe_size=1, val_size=1, test_size=1).train
    blocks = [f"# {spec.name} ({spec.cluster}, {spec.metric}, {len(template_pairs(spec))} templates)"]
    for row in train.select(range(min(n, len(train)))):
        blocks.append(
            f"--- template {row['template_id']} [{row['example_id']}]\n{row['prompt']}\n>>> {row['target']}"
        )
    return "\n".join(blocks)
