"""Hub row -> canonical row. The declarative `fields`/`label` mapping covers most tasks; the
named adapters below cover rows a path cannot express (choices stored as lists, string
labels, placeholders). Every path ends in `canonicalize`, which the offline source uses too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tasks.spec import TaskSpec

Row = dict[str, Any]
_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def get_path(row: Mapping[str, Any], path: str) -> Any:
    """Follow "a.b[0]" through nested dicts/lists; None where a step is missing."""
    cur: Any = row
    for key, index in _STEP.findall(path):
        if cur is None:
            return None
        if key:
            cur = cur.get(key) if isinstance(cur, Mapping) else None
        else:
            i = int(index)
            cur = cur[i] if isinstance(cur, (list, tuple)) and -len(cur) <= i < len(cur) else None
    return cur


def apply_fields(spec: TaskSpec, raw: Mapping[str, Any]) -> Row:
    """The declarative part: canonical field <- row path, label <- path (+ label_map)."""
    row: Row = {name: get_path(raw, path) for name, path in spec.hub.fields.items()}
    if spec.hub.label is not None:
        label = get_path(raw, spec.hub.label)
        if label is None:
            return {**row, "label": None}
        label = int(label)
        if spec.hub.label_map is not None:
            label = spec.hub.label_map.get(label, -1)
        row["label"] = label
    return row


# ------------------------------------------------------------------ named adapters
def two_options(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    row["options"] = [row.pop("option_0"), row.pop("option_1")]
    return row


def copa(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    return {"premise": raw["premise"], "question": raw["question"],
            "options": [raw["choice1"], raw["choice2"]], "label": int(raw["label"])}


def hellaswag(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    if str(raw.get("label", "")).strip() == "":
        return None  # unlabeled test rows
    clean = lambda s: re.sub(r"\[.*?\]\s*", "", s).strip()
    return {"context": clean(raw["ctx"]), "options": [clean(e) for e in raw["endings"]], "label": int(raw["label"])}


def story_cloze(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    context = " ".join(raw[f"input_sentence_{i}"] for i in range(1, 5))
    return {"context": context, "options": [raw["sentence_quiz1"], raw["sentence_quiz2"]],
            "label": int(raw["answer_right_ending"]) - 1}


def arc(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    labels, texts = raw["choices"]["label"], raw["choices"]["text"]
    if raw["answerKey"] not in labels:
        return None
    return {"question": raw["question"], "options": list(texts), "label": list(labels).index(raw["answerKey"])}


def openbookqa(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    out = arc(spec, {"question": raw["question_stem"], "choices": raw["choices"], "answerKey": raw["answerKey"]}, row)
    return None if out is None else {**out, "fact": raw.get("fact1") or ""}


def winogrande(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    if str(raw.get("answer", "")) not in ("1", "2"):
        return None
    return {"sentence": raw["sentence"], "options": [raw["option1"], raw["option2"]], "label": int(raw["answer"]) - 1}


def common_gen(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    return {"concepts": ", ".join(raw["concepts"]), "answer": raw["target"]}


def dart(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    triples = " ; ".join(" | ".join(t) for t in raw["tripleset"])
    texts = raw["annotations"]["text"]
    return {"data": re.sub(r"\[(.*?)\]", "", triples), "answer": texts[0]} if texts else None


def web_nlg(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    data = " ; ".join(raw["input"]).replace("_", " ")
    return {"data": data, "answer": raw["target"]}


def true_case(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    text = row["text"]
    return None if text.lower() == text else {"source": text.lower(), "answer": text}


def word_segment(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    return {"source": row["text"].replace(" ", ""), "answer": row["text"]}


def fix_punct(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    bare = re.sub(r"[^\w\s]", "", row["text"])
    return None if bare == row["text"] else {"source": bare, "answer": row["text"]}


def ag_news(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    # fancyzhx/ag_news keeps title and description in one `text` field ("Title (Source) - body").
    title, _, body = raw["text"].partition(" - ")
    return {"title": title, "text": body or title, "label": int(raw["label"])}


def squad_v2(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    texts = raw["answers"]["text"]
    return {**row, "answer": texts[0] if texts else "unanswerable"}


def sentiment140(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    polarity = int(raw["sentiment"])  # 0 negative, 2 neutral, 4 positive
    return None if polarity == 2 else {"text": raw["text"], "label": 1 if polarity == 4 else 0}


def stsb(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    return {"sentence1": raw["sentence1"], "sentence2": raw["sentence2"], "label": round(float(raw["label"]))}


def cosmos(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    return {"context": raw["context"], "question": raw["question"],
            "options": [raw[f"answer{i}"] for i in range(4)], "label": int(raw["label"])}


def record(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    if not raw["answers"]:
        return None
    left, _, right = raw["query"].partition("@placeholder")
    entities = list(dict.fromkeys(raw["entities"]))
    passage = raw["passage"].split("@highlight")[0].strip()
    answer = raw["answers"][0]
    if answer not in entities:
        entities.append(answer)
    return {"passage": passage, "query": f"{left}___{right}".strip(), "options": entities, "label": entities.index(answer)}


def coqa(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    qs, ans = raw["questions"], raw["answers"]["input_text"]
    return {"story": raw["story"], "questions": "\n".join(f"{i + 1}. {q}" for i, q in enumerate(qs)),
            "answer": "\n".join(f"{i + 1}. {a}" for i, a in enumerate(ans))}


def quac(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    # One dialogue holds many turns; FLAN uses one (question, answer) per example: take the first.
    texts = raw["orig_answers"]["texts"]
    return {"title": raw["wikipedia_page_title"], "background": raw["background"], "context": raw["context"],
            "question": raw["questions"][0], "answer": texts[0] if texts else "CANNOTANSWER"}


def math(spec: TaskSpec, raw: Mapping, row: Row) -> Row | None:
    clean = lambda s: re.sub(r"^b'|\\n'$|'$", "", str(s)).strip()
    return {"question": clean(raw["question"]), "answer": clean(raw["answer"])}


ADAPTERS: dict[str, Callable[[TaskSpec, Mapping, Row], Row | None]] = {
    f.__name__: f for f in [two_options, copa, hellaswag, story_cloze, arc, openbookqa, winogrande, common_gen,
                            dart, web_nlg, true_case, word_segment, fix_punct, ag_news, squad_v2,
                            sentiment140, stsb, cosmos, record, coqa, quac, math]
}


def canonicalize(spec: TaskSpec, row: Row | None) -> Row | None:
    """Fill `answer`, `options` and `label` consistently; None drops the row."""
    if row is None:
        return None
    label = row.get("label")
    options = row.get("options") if spec.per_row_options else (list(spec.options) if spec.options else [])
    if spec.is_classification:
        if label is None or not (0 <= int(label) < len(options or [])):
            return None  # unlabeled (e.g. SNLI's -1) or out of range
        row["answer"] = str(options[int(label)])
        row["label"] = int(label)
    else:
        if row.get("answer") in (None, "") and row.get("sent2"):
            row["answer"] = row["sent2"]  # translation: the forward target
        if row.get("answer") in (None, ""):
            return None
        row["label"] = -1
    row["options"] = [str(o) for o in (options or [])]
    return {k: ("" if v is None else v) for k, v in row.items()}


def from_hub(spec: TaskSpec, raw: Mapping[str, Any]) -> Row | None:
    row = apply_fields(spec, raw)
    if spec.hub.adapter:
        row = ADAPTERS[spec.hub.adapter](spec, raw, row)
    return canonicalize(spec, row)
