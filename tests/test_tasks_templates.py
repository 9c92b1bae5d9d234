"""Ten distinct templates per task, inverted ones included, OPTIONS for classification."""

from __future__ import annotations

import pytest

from tasks import all_tasks, get_task
from tasks.adapters import canonicalize
from tasks.miniflan.build import generate_pool
from tasks.templates import list_templates, render, template_fields, template_id_for


def rows_for(spec, n: int = 10) -> list[dict]:
    """Mini-Flan rows; for a task that exists only as real text (its readers are tested on the
    packages' layout in test_tasks_packaged), rows holding every field its templates name."""
    if spec.generator is not None:
        return generate_pool(spec, "train", n)
    fields = template_fields(spec) - set(spec.constants) - {"answer"}
    rows = []
    for i in range(n):
        row = {f: f"{f} number {i}" for f in fields}
        if spec.per_row_options:
            row["options"] = [f"choice {i}", f"other {i}", f"third {i}"]
        row["label"] = 0 if spec.is_classification else -1
        if not spec.is_classification:
            row["answer"] = f"answer {i}"
        rows.append(canonicalize(spec, row))
    return rows


@pytest.mark.parametrize("spec", all_tasks(), ids=lambda s: s.name)
def test_ten_distinct_templates_that_render_offline_rows(spec):
    temps = list_templates(spec)
    assert len(temps) == 10
    assert len({t.prompt for t in temps}) == 10  # distinct instructions
    assert any(t.inverted for t in temps) and sum(not t.inverted for t in temps) >= 6
    rows = rows_for(spec)
    assert template_fields(spec) <= set(rows[0]) | set(spec.constants)  # every placeholder is filled
    prompts = set()
    for i, row in enumerate(rows):
        prompt, target, options = render(spec, row, template_id_for(i))
        assert prompt.strip() and target.strip()
        assert "{" not in prompt.replace("{}", "")  # nothing left unformatted
        prompts.add(prompt)
        if spec.is_classification and not temps[i].inverted and temps[i].shows_options:
            assert "OPTIONS:" in prompt and options and target in options
        if temps[i].inverted:
            assert options == [] and "OPTIONS:" not in prompt
    assert len(prompts) == 10


def test_round_robin_assignment():
    assert [template_id_for(i) for i in range(12)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_classification_options_are_listed_in_forward_templates():
    spec = get_task("anli_r1")
    row = generate_pool(spec, "train", 1)[0]
    prompt, target, options = render(spec, row, 0)
    assert prompt.endswith("OPTIONS:\n- Yes\n- It's impossible to say\n- No")
    assert options == ["Yes", "It's impossible to say", "No"] and target in options
    prompt, target, options = render(spec, row, 7)  # inverted: generates the hypothesis
    assert target == row["hypothesis"] and row["answer"] in prompt and options == []
