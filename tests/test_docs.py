"""The docs checked against the code. docs/interfaces.md promises that `runner/` uses `tasks/` and
`analysis/` only through the names it lists: every listed name must exist at the module it is listed
under (with the parameters its signature shows), and every name `runner/` imports across that
boundary must be listed. Also: the doc's `runner/` tree names every module, and the count of the
authors' tasks the docs state is the authors' list. Pure and fast: the code is read with `ast`, nothing
is imported.

How the doc is read (its header says the same): a heading whose first code span is a module of
`tasks` or `analysis` (### `analysis.derive` — ...) opens that module's listing; each unindented,
non-comment line of a ```python block under it starts with the names it lists (`a, b` lists
several; a name starting with `tasks.` or `analysis.` is absolute, any other is relative to the
heading's module). `name(params)` is a signature: its parameters must be the function's, all of them
unless the list holds `...`. Any other heading closes the listing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INTERFACES = ROOT / "docs" / "interfaces.md"
PACKAGES = ("tasks", "analysis")  # the pure packages the doc lists
CALLERS = ("runner",)  # the doc's promise is about the runner; benchmarks/ may time internals

HEADING = re.compile(r"^#{1,6}\s")
MODULE_HEADING = re.compile(r"^#{1,6}\s+`([A-Za-z_][\w.]*)`")
NAMES = re.compile(r"[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*")


@dataclass(frozen=True)
class Entry:
    name: str  # dotted, from the package down: analysis.derive.options_for
    line: int  # where the doc lists it
    params: str | None = None  # the parameter list as written, for `name(params)`


# ---------------------------------------------------------------- the doc


def listed(text: str) -> list[Entry]:
    """Every name the doc lists, in the format described in this module's docstring."""
    entries: list[Entry] = []
    module, fence, lines = None, None, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is None:
            if HEADING.match(line):
                found = MODULE_HEADING.match(line)
                module = found.group(1) if found and found.group(1).split(".")[0] in PACKAGES else None
            continue
        if fence != "python" or module is None or not line.strip() or line[0].isspace() or line.startswith("#"):
            continue
        names = NAMES.match(line)
        assert names, f"docs/interfaces.md:{i + 1}: an unindented line must start with a name: {line!r}"
        qualified = [qualify(module, name.strip()) for name in names.group(0).split(",")]
        rest = line[names.end():]
        params = _parameters(rest + "\n" + "\n".join(lines[i + 1:])) if rest.startswith("(") and len(qualified) == 1 else None
        entries += [Entry(name, i + 1, params) for name in qualified]
    return entries


def qualify(module: str, name: str) -> str:
    return name if name.split(".")[0] in PACKAGES else f"{module}.{name}"


def _parameters(text: str) -> str:
    """The text inside the parentheses that `text` opens."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return text[1:i]
    raise AssertionError(f"unbalanced parentheses in docs/interfaces.md near {text[:80]!r}")


# ---------------------------------------------------------------- the code, read with ast

Found = ast.AST | str | None  # a definition, "module:<dotted>", "opaque" (exists, not ours to read), or None


def module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def bindings(path: Path) -> dict[str, ast.AST]:
    """The names a module binds at its top level (inside if/try too): definitions, assignments, imports;
    `__all__` names served lazily by a module `__getattr__` are bound to the `__all__` statement."""
    bound: dict[str, ast.AST] = {}
    lazy: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                bound[node.name] = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            bound[name.id] = node
                if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                    lazy.extend(c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    bound[alias.asname or alias.name.split(".")[0]] = node
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for part in getattr(node, block, []):
                        visit(part.body if isinstance(part, ast.ExceptHandler) else [part])

    visit(ast.parse(path.read_text()).body)
    for name in lazy:
        bound.setdefault(name, ast.Pass())  # exists (served on first use), nothing to read
    return bound


@cache
def find(dotted: str) -> Found:
    """What `dotted` names in the code, attribute by attribute as Python would resolve it: a module
    ("module:<dotted>"), a definition (re-exports followed), "opaque", or None when nothing has that name."""
    parts = dotted.split(".")
    found: Found = f"module:{parts[0]}" if module_file(parts[0]) else None
    for attr in parts[1:]:
        if isinstance(found, str) and found.startswith("module:"):
            found = lookup(found.removeprefix("module:"), attr)
        elif isinstance(found, ast.ClassDef):
            found = {n: d for d in found.body for n in _class_names(d)}.get(attr)
        elif found is not None:
            return "opaque"  # an attribute of a value (not a module or class): not read here
    return found


def lookup(module: str, attr: str, depth: int = 0) -> Found:
    """`module.attr`: the module's own binding (an import followed to its source), else its submodule."""
    node = bindings(module_file(module)).get(attr)
    if isinstance(node, ast.Import):
        source = next(a.name for a in node.names if (a.asname or a.name.split(".")[0]) == attr)
        source = source if any(a.asname == attr for a in node.names) else attr
        return f"module:{source}" if module_file(source) else "opaque"
    if isinstance(node, ast.ImportFrom):
        source, name = _source(node, attr, module)
        if source.split(".")[0] not in PACKAGES or depth > 10:
            return "opaque"
        if module_file(f"{source}.{name}") and bindings(module_file(source)).get(name) in (None, node):
            return f"module:{source}.{name}"  # `from package import submodule`
        return lookup(source, name, depth + 1) if module_file(source) else None
    if node is not None:
        return node
    return f"module:{module}.{attr}" if module_file(f"{module}.{attr}") else None


def _source(node: ast.ImportFrom, local: str, module: str) -> tuple[str, str]:
    """(module, name) that `from ... import name as local` reads, relative imports resolved."""
    alias = next(a for a in node.names if (a.asname or a.name) == local)
    if not node.level:
        return node.module, alias.name
    package = module.split(".") + ([""] if module_file(module).name == "__init__.py" else [])
    base = ".".join(package[: len(package) - node.level])
    return ".".join(p for p in (base, node.module or "") if p), alias.name


def key(dotted: str) -> object:
    """One key per thing in the code, whatever path reaches it (tasks.include is tasks.registry.include)."""
    found = find(dotted)
    return (id(found), dotted.rsplit(".", 1)[-1]) if isinstance(found, ast.AST) else dotted


def _class_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    return []


def missing(entries: list[Entry]) -> list[str]:
    return [f"docs/interfaces.md:{e.line}: `{e.name}` is not in the code" for e in entries if find(e.name) is None]


@cache
def imported(callers: tuple[str, ...] = CALLERS) -> dict[str, list[str]]:
    """Every name of `tasks`/`analysis` the callers use -> where: `from m import name`, and the attributes
    read from a module they import (`import tasks as suite; suite.get_task` is tasks.get_task)."""
    used: dict[str, list[str]] = {}
    for folder in callers:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT)
            tree = ast.parse(path.read_text())
            modules: dict[str, str] = {}  # local name -> the module of ours it is bound to
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in PACKAGES:
                    for alias in node.names:
                        name = f"{node.module}.{alias.name}"
                        if _is_module(name):
                            modules[alias.asname or alias.name] = name
                        else:
                            used.setdefault(name, []).append(f"{where}:{node.lineno}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in PACKAGES:
                            local = alias.asname or alias.name.split(".")[0]
                            modules[local] = alias.name if alias.asname else local
            for name, line in _attributes(tree, modules):
                used.setdefault(name, []).append(f"{where}:{line}")
    return used


def _attributes(tree: ast.AST, modules: dict[str, str]) -> list[tuple[str, int]]:
    """`local.a.b` read from a module: the first name along the chain that is not a submodule."""
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in modules:
            continue
        current = modules[base.id]
        for attr in chain:
            current = f"{current}.{attr}"
            if not _is_module(current):
                found.append((current, node.lineno))
                break
    return found


def _is_module(dotted: str) -> bool:
    found = find(dotted)
    return isinstance(found, str) and found.startswith("module:")


def unlisted(entries: list[Entry], used: dict[str, list[str]]) -> list[str]:
    """The names used but not listed; a name counts as listed under any path that reaches it."""
    keys = {key(e.name) for e in entries}
    return [f"{', '.join(where)}: uses `{name}`, which docs/interfaces.md does not list"
            for name, where in sorted(used.items()) if key(name) not in keys]


def signature_problems(entries: list[Entry]) -> tuple[list[str], int]:
    """(problems, signatures checked): each `name(params)` written as Python against the function's own
    parameters. A list that is not Python (prose in it) is not checked; a class's is not either."""
    problems, checked = [], 0
    for entry in entries:
        node = find(entry.name)
        if entry.params is None or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        try:
            doc = ast.parse(f"def f({_without_ellipsis(entry.params)}): pass").body[0].args
        except SyntaxError:
            continue
        checked += 1
        shown, actual = _names(doc), _names(node.args) - {"self", "cls"}
        where = f"docs/interfaces.md:{entry.line}: `{entry.name}`"
        if shown - actual:
            problems.append(f"{where} shows parameter(s) {sorted(shown - actual)} it does not take")
        if "..." not in entry.params and actual - shown:
            problems.append(f"{where} omits parameter(s) {sorted(actual - shown)} (or write `...`)")
        real = _defaults(node.args)
        for name, default in _defaults(doc).items():
            written, coded = _literal(default), _literal(real.get(name))
            if None not in (written, coded) and written != coded:
                problems.append(f"{where}: `{name}` defaults to {ast.unparse(real[name])}, not {ast.unparse(default)}")
    return problems, checked


def _without_ellipsis(params: str) -> str:
    """The written parameters with `...` (the rest, or an elided default) taken out."""
    params = re.sub(r"=\s*\.\.\.", "=_", params)
    return re.sub(r",\s*\*\s*$", "", re.sub(r",?\s*\.\.\.", "", params))


def _names(args: ast.arguments) -> set[str]:
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    return names | {f"*{a.arg}" for a in (args.vararg,) if a} | {f"**{a.arg}" for a in (args.kwarg,) if a}


def _literal(node: ast.expr | None) -> str | None:
    """A literal default's value; None for a name or a call (compared only when both are literals)."""
    try:
        return repr(ast.literal_eval(node)) if node is not None else None
    except (ValueError, TypeError, SyntaxError):
        return None


def _defaults(args: ast.arguments) -> dict[str, ast.expr]:
    positional = [*args.posonlyargs, *args.args]
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return {a.arg: d for a, d in pairs}


# ---------------------------------------------------------------- the tests


def test_every_listed_name_exists():
    entries = listed(INTERFACES.read_text())
    assert len(entries) > 50, "docs/interfaces.md lists almost nothing: is its format still the one described?"
    assert not missing(entries), "\n".join(missing(entries))


def test_every_name_the_runner_imports_is_listed():
    used = imported()
    assert {"tasks.get_task", "analysis.derive.derive_frames"} <= set(used), "the import scan found nothing"
    problems = unlisted(listed(INTERFACES.read_text()), used)
    assert not problems, "\n".join(problems)


def test_listed_signatures_match_the_code():
    problems, checked = signature_problems(listed(INTERFACES.read_text()))
    assert checked >= 15, f"only {checked} signatures could be checked: write them as Python"
    assert not problems, "\n".join(problems)


def _planted(tmp_path: Path, old: str, new: str) -> list[Entry]:
    """The doc's entries after one edit, made in a copy."""
    text = INTERFACES.read_text()
    assert old in text, f"{old!r} is gone from docs/interfaces.md: update this test"
    copy = tmp_path / "interfaces.md"
    copy.write_text(text.replace(old, new, 1))
    return listed(copy.read_text())


def _planted_line(tmp_path: Path, package: str, line: str) -> tuple[list[Entry], str]:
    """(entries, module) after `line` is planted at the top of the first listing of a `package` module."""
    text = INTERFACES.read_text()
    heading = re.search(rf"^#+ `({package}(?:\.[\w.]+)?)`.*\n(?:.*\n)*?```python\n", text, re.MULTILINE)
    assert heading, f"no listing of a {package} module in docs/interfaces.md"
    copy = tmp_path / "interfaces.md"
    copy.write_text(text[: heading.end()] + line + "\n" + text[heading.end():])
    return listed(copy.read_text()), heading.group(1)


def test_a_name_planted_in_a_copy_that_does_not_exist_fails(tmp_path):
    assert not missing(listed(INTERFACES.read_text()))
    entries, module = _planted_line(tmp_path, "analysis", "no_such_function(x) -> int   # planted")
    assert any(f"`{module}.no_such_function` is not in the code" in p for p in missing(entries))
    # a real name of one package listed under the other's module is caught too
    entries, module = _planted_line(tmp_path, "analysis", "resolve_tasks(selection)")
    assert any(f"`{module}.resolve_tasks` is not in the code" in p for p in missing(entries))
    entries, module = _planted_line(tmp_path, "tasks", "analysis.derive.no_such_frame")
    assert any("`analysis.derive.no_such_frame` is not in the code" in p for p in missing(entries))


def test_a_runner_import_dropped_from_a_copy_fails(tmp_path):
    used = imported()
    entries = listed(INTERFACES.read_text())
    assert not unlisted(entries, used)
    # every name the runner uses, listed on a line of its own, dropped in turn from a copy
    lines = INTERFACES.read_text().splitlines()
    alone = [e for e in entries if sum(o.line == e.line for o in entries) == 1
             and sum(key(o.name) == key(e.name) for o in entries) == 1 and key(e.name) in {key(u) for u in used}]
    assert len(alone) > 20
    for entry in alone:
        copy = tmp_path / "interfaces.md"
        copy.write_text("\n".join(lines[: entry.line - 1] + ["# (dropped)"] + lines[entry.line:]))
        problems = unlisted(listed(copy.read_text()), used)
        assert len(problems) == 1 and entry.name.rsplit(".", 1)[-1] in problems[0], (entry, problems)


def test_a_wrong_parameter_planted_in_a_copy_fails(tmp_path):
    entries = _planted(tmp_path, "task_pairs(models, compared", "task_pairs(models, compard")
    problems, _ = signature_problems(entries)
    assert any("task_pairs" in p and "compard" in p for p in problems)
    assert any("task_pairs" in p and "omits" in p and "compared" in p for p in problems)


def test_the_import_scan_follows_module_aliases():
    # runner/data.py: `import tasks as suite` ... `suite.load_splits(...)`; runner/sources.py: `from
    # tasks.packaged import status` ... `status.table(...)`
    used = imported()
    assert any(w.startswith("runner/data.py") for w in used["tasks.load_splits"])
    assert "tasks.packaged.status.table" in used


def test_the_paper_task_count_the_docs_state_is_the_authors_list():
    authors = len(yaml.safe_load((ROOT / "tasks" / "paper_tasks.yaml").read_text())["paper_tasks"])
    stated = [(path, int(n)) for path in (ROOT / "tasks" / "README.md", INTERFACES)
              for n in re.findall(r"(?:authors'|paper's)(?: list of)? (\d+)\b(?!/)", path.read_text())]
    assert stated, "no count of the authors' tasks found in tasks/README.md or docs/interfaces.md"
    assert all(n == authors for _, n in stated), f"the authors' list has {authors} tasks; the docs say {stated}"


def test_the_runner_tree_names_every_module():
    text = INTERFACES.read_text()
    block = text[text.index("```text\nrunner/"):]
    block = block[: block.index("\n```")]
    described: dict[str, set[str]] = {}  # folder -> the words of its lines
    for line in block.splitlines()[1:]:
        if line.startswith("runner/"):
            folder = line.split()[0]
        described.setdefault(folder, set()).update(re.findall(r"\w+", line))
    problems = []
    for folder in ["runner/", *(f"runner/{p.name}/" for p in sorted((ROOT / "runner").iterdir()) if p.is_dir())]:
        modules = sorted(p.stem for p in (ROOT / folder).glob("*.py") if not p.stem.startswith("__"))
        if not modules or folder == "runner/stages/":  # the stages: one line for them all (runner/stages/<name>.py)
            continue
        problems += [f"docs/interfaces.md: {folder}{m}.py is not described" for m in modules
                     if m not in described.get(folder, set())]
    assert not problems, "\n".join(problems)
