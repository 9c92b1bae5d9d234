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


# analysis/ reads as the data flows: each sub-package imports only those before it.
FLOW = ("measures", "frames", "derived", "claims", "figures", "report")


def _analysis_modules() -> list[Path]:
    return sorted((ROOT / "analysis").rglob("*.py"))


def test_analysis_keeps_few_top_level_modules_beside_its_flow():
    top = sorted(p.name for p in (ROOT / "analysis").glob("*.py"))
    assert len(top) <= 8, f"analysis/ has {len(top)} top-level modules ({top}): put new ones in their sub-package"
    packages = {p.name for p in (ROOT / "analysis").iterdir() if (p / "__init__.py").exists()}
    assert packages == set(FLOW), f"analysis/ sub-packages {sorted(packages)} differ from the flow {FLOW}"


def test_each_analysis_sub_package_imports_only_the_ones_before_it():
    wrong = []
    for path in _analysis_modules():
        parts = path.relative_to(ROOT / "analysis").parts
        if len(parts) < 2:
            continue
        allowed = set(FLOW[:FLOW.index(parts[0]) + 1])
        for name in _imports(path):
            bits = name.split(".")
            if bits[0] == "analysis" and len(bits) > 1 and bits[1] in FLOW and bits[1] not in allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_analysis_module_imports_another_modules_private_name():
    import ast

    wrong = []
    for path in _analysis_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis"):
                wrong += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, "shared names should be public in the module whose job they are:\n" + "\n".join(wrong)
