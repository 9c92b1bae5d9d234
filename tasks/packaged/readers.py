"""Readers: a package's raw files -> a task's canonical rows (its template fields, `label` or `answer`).

One function per file layout. Each takes the task spec, the folder the package's members are
unpacked under and the registry entry's `packaged` arguments, and returns rows; a row may carry
`_group`, a key that keeps near-duplicates (one premise with several hypotheses, twin sentences, one
passage with several questions) inside one pool, so no held-out probe is a training example in
disguise. `members(...)` names the files a reader needs, so only those are unpacked.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.spec import TaskSpec

Row = dict[str, Any]


class ReaderError(ValueError):
    """A package file does not hold what the registry entry says; one line naming the task and file."""


def _fail(spec: TaskSpec, what: str) -> ReaderError:
    return ReaderError(f"{spec.name}: {what} (packaged.file {spec.packaged.file!r}); check the registry entry")


def _task_json(root: Path, file: str) -> list[dict]:
    with (root / file / "task.json").open(encoding="utf-8") as f:
        return json.load(f)["examples"]


def _first(target: Any) -> str:
    return str(target[0] if isinstance(target, list) else target).strip()


def _argmax(scores: Mapping[str, float]) -> str | None:
    best = max(scores.values())
    winners = [k for k, v in scores.items() if v == best]
    return winners[0] if len(winners) == 1 else None


# ---------------------------------------------------------------- post-processing of one row
def _webnlg(row: Row) -> Row:
    """'(A | rel | B), (C | rel | D)' -> 'A | rel | B ; C | rel | D', underscores as spaces (as the hub adapter)."""
    triples = re.findall(r"\(([^()]*?)\)(?:,|$)", row["data"]) or [row["data"]]
    return {**row, "data": " ; ".join(t.strip() for t in triples).replace("_", " ")}


def _concepts(row: Row) -> Row:
    return {**row, "concepts": ", ".join(row["concepts"].split())}


def _blank(row: Row) -> Row:
    """BIG-bench's <MASK> span as the '___' the templates show."""
    return {k: v.replace("<MASK>", "___") if isinstance(v, str) else v for k, v in row.items()}


def _strip_period(row: Row) -> Row:
    """Natural Instructions ends short answers with a period ("3.", "movie.")."""
    return {**row, "answer": row["answer"].removesuffix(".").strip()} if "answer" in row else row


POST: dict[str, Callable[[Row], Row]] = {"webnlg": _webnlg, "concepts": _concepts, "blank": _blank,
                                         "strip_period": _strip_period}


# ---------------------------------------------------------------- readers
def bigbench(spec: TaskSpec, root: Path, file: str, *, parse: str | None = None, input: str = "text",
             labels: Mapping[str, int] | None = None, group: str | None = None, post: list[str] | None = None,
             single_target: bool = False) -> list[Row]:
    """A BIG-bench task.json: `input` (split into fields by the `parse` regex's named groups, or kept
    whole as field `input`), and `target` (free text, or one of the task's options) or
    `target_scores` (the options, with `labels` mapping each key onto the task's fixed options)."""
    pattern = re.compile(parse, re.S) if parse else None
    rows: list[Row] = []
    for ex in _task_json(root, file):
        text = ex["input"].strip()
        if pattern is None:
            row: Row = {input: text}
        else:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            row = {k: v.strip() for k, v in match.groupdict().items()}
        if "target_scores" in ex:
            key = _argmax(ex["target_scores"])
            if key is None:
                continue
            if labels is not None:
                row["label"] = labels[key.strip()]
            else:
                row["options"] = [k.strip() for k in ex["target_scores"]]
                row["label"] = row["options"].index(key.strip())
        else:
            targets = ex["target"] if isinstance(ex["target"], list) else [ex["target"]]
            if single_target and len(targets) != 1:
                continue
            answer = _first(targets)
            if spec.options is not None:  # a class name written as text ("Quantity.")
                names = [o.lower() for o in spec.options]
                name = answer.rstrip(".").strip().lower()
                if name not in names:
                    continue
                row["label"] = names.index(name)
            else:
                row["answer"] = answer
        for name in post or ():
            row = POST[name](row)
        if group is not None:
            row["_group"] = row[group]
        rows.append(row)
    if not rows:
        raise _fail(spec, "no example matched the entry's parse pattern")
    return rows


_TWIN = re.compile(r"Sentence 1:\s*(?P<s1>.+?)\s*Answer1:\s*(?P<a1>.+?)\s*Sentence 2:\s*(?P<s2>.+?)\s*Answer2:\s*(?P<a2>.+)",
                   re.S)


def winogrande_twins(spec: TaskSpec, root: Path, file: str) -> list[Row]:
    """Natural-Instructions' WinoGrande twins: two sentences with a blank that differ in one trigger
    word, each answered by one of the two objects; one row per sentence, both objects as options."""
    rows = []
    for i, ex in enumerate(_task_json(root, file)):
        match = _TWIN.fullmatch(_first(ex["target"]))
        if match is None:
            continue
        options = [match["a1"].rstrip(". "), match["a2"].rstrip(". ")]
        if options[0] == options[1] or "_" not in match["s1"]:
            continue
        for label, sentence in ((0, match["s1"]), (1, match["s2"])):
            rows.append({"sentence": sentence, "options": options, "label": label, "_group": f"twin{i}"})
    return rows


_ORDER = re.compile(r'.*?a "\s*(?P<a>.+?)\s*" b "\s*(?P<b>.+?)\s*" \?', re.S)


def adjective_order(spec: TaskSpec, root: Path, file: str) -> list[Row]:
    """BIG-bench hyperbaton: each pair of noun phrases gives one acceptable and one unacceptable
    phrase (CoLA's format: a judgement of one phrase, not a choice between two)."""
    rows = []
    for i, ex in enumerate(_task_json(root, file)):
        match, right = _ORDER.fullmatch(ex["input"].strip()), _argmax(ex["target_scores"])
        if match is None or right not in ("a", "b"):
            continue
        for side in ("a", "b"):
            rows.append({"sentence": match[side], "label": int(side == right), "_group": f"pair{i}"})
    return rows


def parallel(spec: TaskSpec, root: Path, file: str, *, target: str) -> list[Row]:
    """Two BIG-bench task.json files holding the same examples in two languages (MultiEmo's
    translations of one review corpus): sent1 from `file`, sent2 from `target`, aligned by index
    (rows whose labels disagree are not the same sentence and are dropped)."""
    a, b = _task_json(root, file), _task_json(root, target)
    if len(a) != len(b):
        raise _fail(spec, f"{file} and {target} hold {len(a)} and {len(b)} examples: not aligned")
    rows = []
    for x, y in zip(a, b):
        if _argmax(x["target_scores"]) != _argmax(y["target_scores"]):
            continue
        rows.append({"sent1": x["input"].strip(), "sent2": y["input"].strip(), "_group": x["input"].strip().lower()})
    return rows


def paraphrase_sets(spec: TaskSpec, root: Path, file: str, *, also: str | None = None, block: int = 3,
                    pairs_per_set: int = 2) -> list[Row]:
    """Paraphrase identification from GEM's simplification sets (ASSET, TurkCorpus): every set holds
    human rewrites of one Wikipedia sentence. A positive pairs two rewrites of one set; a negative
    pairs a rewrite with one of a lexically close other set. Sets are chained into blocks of
    `block` by word overlap and negatives stay inside a block, which is also the row's group, so
    no sentence crosses pools."""
    sets = [[ex["input"].strip(), *(t.strip() for t in ex["target"])] for ex in _task_json(root, file)]
    if also:
        by_first = {s[1]: s for s in sets}
        for ex in _task_json(root, also):
            targets = [t.strip() for t in ex["target"]]
            if targets and targets[0] in by_first:
                by_first[targets[0]].extend([ex["input"].strip(), *targets])
    sets = [list(dict.fromkeys(s)) for s in sets if len(set(s)) >= 3]
    words = [set(re.findall(r"\w+", " ".join(s).lower())) for s in sets]
    order, left = [0], set(range(1, len(sets)))
    while left:  # a greedy chain: each set followed by its closest unused neighbour
        last = order[-1]
        nxt = max(left, key=lambda j: (len(words[last] & words[j]) / len(words[last] | words[j]), -j))
        order.append(nxt)
        left.remove(nxt)
    rows = []
    for start in range(0, len(order), block):
        members = order[start:start + block]
        if len(members) < 2:
            continue
        for k, i in enumerate(members):
            other = members[(k + 1) % len(members)]
            for p in range(pairs_per_set):
                a, b = sets[i][p % len(sets[i])], sets[i][(p + 1) % len(sets[i])]
                neg = sets[other][(p + 2) % len(sets[other])]
                rows.append({"sentence1": a, "sentence2": b, "label": 1, "_group": f"block{start}"})
                rows.append({"sentence1": a, "sentence2": neg, "label": 0, "_group": f"block{start}"})
    return rows


def _ratings(root: Path, file: str) -> list[tuple[str, float, str]]:
    """(id, mean rating, text) lines of a VADER ground-truth file inside the ICWSM 2014 tarball."""
    archive, member = file.split(":", 1)
    with tarfile.open(root / archive, "r:gz") as tar:
        raw = tar.extractfile(member)
        if raw is None:
            raise FileNotFoundError(member)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace").read()
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            out.append((parts[0], float(parts[1]), parts[2].strip()))
    return out


def rated_sentiment(spec: TaskSpec, root: Path, file: str, *, margin: float = 0.5) -> list[Row]:
    """VADER's human-rated sentences (mean of about 20 raters, -4..+4) as polarity: at least
    `margin` either side of zero; the near-neutral middle is dropped, as SST-2 drops its neutrals."""
    return [{"text": text, "label": int(rating > 0)} for _, rating, text in _ratings(root, file) if abs(rating) >= margin]


def rated_sentences(spec: TaskSpec, root: Path, file: str, *, min_words: int = 6) -> list[Row]:
    """The sentences of a VADER ground-truth file as plain text (for the text-formatting tasks)."""
    return [{"text": text} for _, _, text in _ratings(root, file) if len(text.split()) >= min_words]


def news_articles(spec: TaskSpec, root: Path, file: str, *, mode: str) -> list[Row]:
    """BBC News (one folder per topic, one article per file: the headline, then the body).
    mode "topic": classify the article; mode "headline": write the headline from the body."""
    topics = [o.lower() for o in spec.options] if spec.options else []
    rows = []
    for folder in sorted(p for p in (root / file).iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.txt")):
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
            if len(lines) < 2:
                continue
            title, body = lines[0], " ".join(lines[1:])
            if mode == "topic":
                if folder.name.lower() not in topics:
                    raise _fail(spec, f"topic folder {folder.name!r} is not among the options {spec.options}")
                rows.append({"title": title, "text": body, "label": topics.index(folder.name.lower())})
            else:
                rows.append({"text": body, "answer": title})
    return rows


def conversation_pairs(spec: TaskSpec, root: Path, file: str) -> list[Row]:
    """ChatterBot corpus YAML: each conversation's first line is the question, the next the answer."""
    data = yaml.safe_load((root / file).read_text(encoding="utf-8"))
    return [{"question": str(c[0]).strip(), "answer": str(c[1]).strip()}
            for c in data.get("conversations", []) if len(c) >= 2 and str(c[1]).strip()]


# Run in a child process: the shims patch numpy and sympy for mathematics_dataset's 2019 code, and
# must not leak into the caller.
_MATH = r"""
import json, random, sys
import numpy as np
np.object = object
import sympy.solvers.diophantine  # the package's function shadows its module: patch the module
from sympy.solvers.diophantine.diophantine import base_solution_linear
sys.modules["sympy.solvers.diophantine"].base_solution_linear = base_solution_linear
from mathematics_dataset import generate_settings
from mathematics_dataset.modules import modules
group, name, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
random.seed(seed); np.random.seed(seed)
module = modules.train(lambda r: (r[0], r[1]))[group][name]
seen, out = set(), []
while len(out) < n:
    p = module()
    q, a = str(p.question), str(p.answer)
    if len(q) > generate_settings.MAX_QUESTION_LENGTH or len(a) > generate_settings.MAX_ANSWER_LENGTH or q in seen:
        continue
    seen.add(q)
    out.append({"question": q, "answer": a})
json.dump(out, sys.stdout)
"""


def math_problems(spec: TaskSpec, root: Path, file: str, *, n: int = 2000, seed: int = 0) -> list[Row]:
    """Problems from DeepMind's mathematics_dataset generator, FLAN's own source for math_dataset
    (`file` is "<group>__<module>", e.g. algebra__linear_1d), deduplicated by question."""
    group, _, name = file.partition("__")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _MATH, group, name, str(n), str(seed)], capture_output=True,
                          text=True, env=env, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise _fail(spec, f"mathematics_dataset failed: {last[:160]}")
    return json.loads(done.stdout)


READERS: dict[str, Callable[..., list[Row]]] = {
    f.__name__: f for f in (bigbench, winogrande_twins, adjective_order, parallel, paraphrase_sets, rated_sentiment,
                            rated_sentences, news_articles, conversation_pairs, math_problems)
}
# Readers whose `file` is a BIG-bench task folder (they read <file>/task.json).
_TASK_JSON = {"bigbench", "winogrande_twins", "adjective_order", "parallel", "paraphrase_sets"}


def members(reader: str, file: str, args: Mapping[str, Any]) -> list[str]:
    """The package members a reader needs unpacked (a trailing "/" is a whole folder)."""
    if reader in _TASK_JSON:
        extra = [args[k] for k in ("target", "also") if args.get(k)]
        return [f"{f}/task.json" for f in (file, *extra)]
    if reader in ("rated_sentiment", "rated_sentences"):
        return [file.split(":", 1)[0]]
    if reader == "news_articles":
        return [f"{file.rstrip('/')}/"]
    if reader == "math_problems":
        return ["mathematics_dataset/"]
    return [file]


def shown_files(reader: str, file: str, args: Mapping[str, Any]) -> list[str]:
    """What a task's provenance names: the task.json files, the file inside a nested archive, or
    the generator module."""
    if reader in _TASK_JSON:
        return members(reader, file, args)
    if reader == "math_problems":
        return [f"mathematics_dataset/modules (generator {file})"]
    return [file]
