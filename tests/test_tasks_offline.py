"""Offline mini-Flan: every task yields disjoint train/validation/probe/test splits, deterministically."""

from __future__ import annotations

import re
from collections import Counter

import polars as pl
import pytest

import tasks
from tasks import all_tasks, load_splits, task_statistics
from tasks.miniflan import build


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("lwcache")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAYERWISE_CACHE", str(root))
    yield root
    mp.undo()


OFFLINE = [spec for spec in all_tasks() if spec.generator is not None]  # the mini-Flan: the authors' list


@pytest.fixture(scope="module")
def every_split(cache):
    return {spec.name: load_splits(spec) for spec in OFFLINE}


def test_every_task_yields_all_four_splits(every_split):
    assert len(every_split) == len(tasks.PAPER_TASKS)
    for name, s in every_split.items():
        sizes = s.sizes()
        assert sizes["train"] >= 400 and sizes["validation"] == 32, name
        assert sizes["probe"] == 64 and sizes["test"] == 32, name
        assert s.cluster == tasks.get_task(name).cluster
        assert set(s.train.column_names) == {"example_id", "task", "cluster", "template_id", "prompt", "target", "options"}


def test_ids_are_unique_across_tasks_and_splits_are_disjoint(every_split):
    seen: set[str] = set()
    for name, s in every_split.items():
        per_split = {split: set(ds["example_id"]) for split, ds in s.items()}
        for split, ids in per_split.items():
            assert all(re.fullmatch(rf"{name}:{split}:\d{{6}}", i) for i in ids)
            assert not ids & seen
            seen |= ids
    assert len(seen) == len(OFFLINE) * (512 + 32 + 64 + 32)


def test_templates_cycle_and_classification_targets_are_options(every_split):
    for name, s in every_split.items():
        tr = s.train
        assert Counter(tr["template_id"]) == Counter({i: len(tr) // 10 + (i < len(tr) % 10) for i in range(10)})
        for target, options in zip(tr["target"][:50], tr["options"][:50]):
            if options:
                assert target in options, name


def test_probe_is_seeded_and_stable(cache):
    a = load_splits("sst2", seed=0)
    b = load_splits("sst2", seed=0)
    c = load_splits("sst2", seed=1)
    assert a.probe["example_id"] == b.probe["example_id"] and a.probe["prompt"] == b.probe["prompt"]
    assert a.probe["example_id"] != c.probe["example_id"]
    assert not set(c.probe["example_id"]) & set(c.test["example_id"])
    small = load_splits("sst2", max_train=100, probe_size=16, test_size=8, val_size=4)
    assert small.sizes() == {"train": 100, "validation": 4, "probe": 16, "test": 8}
    with pytest.raises(ValueError, match="held-out"):
        load_splits("sst2", probe_size=190, test_size=32)


def test_generation_is_deterministic_and_written_atomically(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path))
    spec = tasks.get_task("xsum")
    paths = build.ensure_task(spec)
    assert all(p.exists() and str(p).startswith(str(tmp_path)) for p in paths.values())
    assert not list(tmp_path.rglob("*.tmp"))  # no leftovers of the tmp + os.replace write
    again = build.generate_pool(spec, "train")
    assert again == pl.read_parquet(paths["train"]).to_dicts()
    assert load_splits(spec).train["prompt"] == load_splits(spec).train["prompt"]


def test_labels_follow_learnable_rules(cache):
    from tasks.miniflan.lexicon import NEG_WORDS, POS_WORDS

    s = load_splits("yelp_polarity_reviews")
    for prompt, target, options in zip(s.train["prompt"], s.train["target"], s.train["options"]):
        if options:  # forward templates: the review's polarity words decide the label
            words = set(re.findall(r"[a-z]+", prompt.lower()))
            assert target == ("positive" if words & set(POS_WORDS) else "negative")
            assert not (words & set(POS_WORDS) and words & set(NEG_WORDS))
    nli = load_splits("mnli_matched").train
    for prompt, target, options in zip(nli["prompt"], nli["target"], nli["options"]):
        if options and re.search(r"did not|never|refused to", prompt):
            assert target == "no"  # negation of the premise: contradiction


def test_clusters_look_different(cache):
    translation = load_splits("wmt16_translate_deen").train["target"][:10]
    assert any(w in " ".join(translation) for w in ("Hund", "Katze", "Kind", "Lehrer", "Vogel"))
    summary = load_splits("cnn_dailymail").train["prompt"][0]
    assert len(summary) > 2 * len(load_splits("sst2").train["prompt"][0])


def test_catalog_and_statistics(every_split):
    cat = tasks.catalog("offline", ["paper"])
    assert cat.height == len(tasks.PAPER_TASKS)
    assert set(cat.columns) >= {"task", "cluster", "hub_id", "templates", "unseen", "metric", "train", "validation",
                                "heldout", "provenance", "licence", "synthetic"}
    unseen = set(tasks.CLUSTERS["unseen"]) & set(tasks.PAPER_TASKS)
    assert cat.filter(pl.col("unseen"))["task"].len() == len(unseen) and (cat["templates"] == 10).all()
    assert cat["synthetic"].all() and (cat["train"] == 512).all()
    stats = task_statistics({n: every_split[n] for n in ("anli_r1", "xsum", "trec")})
    assert stats.columns == ["task", "cluster", "train_size", "flesch_kincaid", "coleman_liau", "provenance",
                             "licence", "synthetic", "derived"]
    assert stats["synthetic"].all()
    assert stats["train_size"].to_list() == [512, 512, 512]
    assert stats["flesch_kincaid"].is_finite().all() and stats["coleman_liau"].is_finite().all()


def test_preview_shows_rendered_examples(cache):
    text = tasks.preview("copa", n=3)
    assert text.count("--- template") == 3 and "copa" in text and ">>>" in text
