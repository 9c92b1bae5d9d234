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


def _imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_stage_imports_another_stage():
    stages = sorted(p.stem for p in (ROOT / "runner" / "stages").glob("*.py") if p.stem != "__init__")
    for stage in stages:
        others = {f"runner.stages.{name}" for name in stages if name != stage}
        leaked = _imports(ROOT / "runner" / "stages" / f"{stage}.py") & others
        assert not leaked, f"runner/stages/{stage}.py imports {sorted(leaked)}; move shared code to its package"


def test_no_module_is_looked_up_by_a_string_holding_its_name():
    import re

    # import_module / __import__ / "pkg.mod:attr" strings: a hidden dependency no reader or tool sees.
    dotted = r"[\"'](runner|analysis|tasks)\.(?!(parquet|yaml|json|html|png)[\"'])[a-z_.]+(:[A-Za-z_]+)?[\"']"
    pattern = re.compile(r"import_module\(|__import__\(|" + dotted)
    # The one exception: the user's own measure modules (analysis.plugins) are named in their config.
    users = {ROOT / "analysis" / "plugins.py"}
    for package in ("runner", "analysis", "tasks"):
        for path in (ROOT / package).rglob("*.py"):
            if path in users:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                assert not pattern.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
