"""`layerwise sources [--check]`: every pinned source, served or not, and what the shipped presets need.

The table itself is tasks.packaged.status (pure); this module reads the shipped presets to know which
tasks and built-in models each one needs, prints one line per pin and, with --check, exits non-zero
naming every preset task or model that no served source is left for.
"""

from __future__ import annotations

import sys
import time

import tasks as suite
from runner.config import load_config, preset_names, preset_path
from runner.models.resolve import BUILTINS


def preset_needs() -> tuple[dict[str, list[str]], dict[str, str]]:
    """(preset -> the packaged tasks it selects, preset -> each built-in model it runs, one entry per model)."""
    preset_tasks: dict[str, list[str]] = {}
    preset_models: dict[str, str] = {}
    for name in preset_names():
        config = load_config(preset_path(name))
        if config.tasks.source == "packaged":
            preset_tasks[name] = [s.name for s in suite.resolve_tasks(config.tasks.select) if s.packaged_sources]
        models = {config.model.name, *config.sweep.grid.get("model.name", []),
                  *(cell["model.name"] for cell in config.sweep.cells if "model.name" in cell)}
        for i, model in enumerate(sorted(m for m in models if m in BUILTINS)):
            preset_models[name if i == 0 else f"{name}:{model}"] = model
    return preset_tasks, preset_models


def command(check: bool) -> int:
    from tasks.packaged import status

    started = time.time()
    preset_tasks, preset_models = preset_needs()
    specs = suite.all_tasks()
    rows = status.table(specs, preset_tasks, preset_models)
    print(status.render(rows))
    served = sum(r.served for r in rows)
    print(f"{served} of {len(rows)} pinned sources served ({time.time() - started:.0f}s); "
          "pins: tasks/packaged/packages.yaml (LAYERWISE_PACKAGE_PINS for another file)")
    if not check:
        return 0
    lost = status.problems(rows, specs, preset_tasks, preset_models)
    for line in lost:
        print(f"layerwise: error: {line}", file=sys.stderr)
    if lost:
        print("layerwise: a shipped preset needs a source that is no longer served: add another source to the "
              "task's `packaged:` list, or choose another task of its cluster", file=sys.stderr)
    return 1 if lost else 0
