"""Rendering rows through a task's instruction templates, and listing them."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.registry import get_task
from tasks.spec import TaskFileError, TaskSpec
from tasks.template_bank import NUM_TEMPLATES, TEMPLATES


@dataclass(frozen=True)
class Template:
    task: str
    id: int
    prompt: str
    target: str

    @property
    def inverted(self) -> bool:
        """Inverted templates ask for the input given the label (target is not the answer)."""
        return self.target != "{answer}"

    @property
    def shows_options(self) -> bool:
        return "{options_}" in self.prompt


def template_pairs(spec: TaskSpec) -> tuple[tuple[str, str], ...]:
    """(prompt, target) format strings: the task's inline templates, else its bank family's ten."""
    return spec.templates or tuple(TEMPLATES[spec.format])


def list_templates(task: str | TaskSpec) -> list[Template]:
    """The task's templates (ten for a bank family), in round-robin order."""
    spec = get_task(task)
    return [Template(spec.name, i, p, t) for i, (p, t) in enumerate(template_pairs(spec))]


def template_fields(task: str | TaskSpec) -> set[str]:
    """Every placeholder the task's templates use (except the rendered OPTIONS block)."""
    names: set[str] = set()
    for t in list_templates(task):
        for text in (t.prompt, t.target):
            names.update(f for _, f, _, _ in string.Formatter().parse(text) if f)
    return names - {"options_"}


def options_block(options: list[str] | tuple[str, ...]) -> str:
    """FLAN's OPTIONS list, appended to forward classification prompts."""
    return "\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in options) if options else ""


def template_id_for(index: int, forward_only: bool = False, task: str | TaskSpec | None = None) -> int:
    """Round-robin assignment by example index, as FLAN cycles its templates. `forward_only` cycles
    through the task's forward templates alone (a scored test example must ask for the answer)."""
    if not forward_only:
        return index % (NUM_TEMPLATES if task is None else len(template_pairs(get_task(task))))
    forward = [t.id for t in list_templates(task) if not t.inverted]
    return forward[index % len(forward)]


def render(spec: TaskSpec, row: Mapping[str, Any], template_id: int) -> tuple[str, str, list[str]]:
    """(prompt, target, options) of one canonical row under one template.

    `row` holds the canonical fields, `answer`, and for classification `options`.
    Options are listed only for forward templates that ask to choose among them.
    """
    prompt_t, target_t = template_pairs(spec)[template_id]
    options = [str(o) for o in (row.get("options") or spec.options or [])]
    show = bool(options) and "{options_}" in prompt_t
    values = {**spec.constants, **row, "options_": options_block(options) if show else ""}
    try:
        return prompt_t.format_map(values), target_t.format_map(values), options if show else []
    except KeyError as err:  # an inline template naming a field its rows lack
        raise TaskFileError(f"{spec.origin}: task {spec.name!r}: template {template_id} uses unknown field {err} "
                            f"(the rows have: {', '.join(sorted(values))})") from None
