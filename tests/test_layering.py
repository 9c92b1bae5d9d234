"""The layering the design promises: `analysis/` and `tasks/` are pure and know nothing of Ray or
of the runner, so a lent GPU box (no Ray) and a notebook can import them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import pkgutil, importlib, sys
for package in ("analysis", "tasks"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("ray", "runner"))
print(",".join(leaked))
"""


def test_analysis_and_tasks_import_neither_ray_nor_the_runner():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"analysis/ or tasks/ imported: {result.stdout.strip()}"
