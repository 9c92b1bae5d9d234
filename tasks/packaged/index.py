"""Where a pinned package file is served today, asked without downloading it.

- PyPI packages: the indexes pip itself is configured with (index-url, extra-index-url, find-links,
  from `pip config list`: pip's files and PIP_* variables), in pip's order. Each index's simple page
  for the project (PEP 691 JSON or PEP 503 HTML) lists the file with its sha256 (and its size,
  where the index says it); a local folder of find-links is looked into directly.
- Debian packages: apt's own record (`apt-cache show NAME=VERSION`), else the pool file on a mirror
  named in apt's sources, asked with a HEAD request.

`listing(pkg)` answers a Listing (where, size, sha256) or raises NotServed with a one-line reason.
Nothing here downloads an archive; tasks/packaged/fetch.py does, from the Listing's url.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

PYPI = "https://pypi.org/simple"
TIMEOUT = 20  # seconds per request: `layerwise sources` must answer in seconds, not minutes


class NotServed(RuntimeError):
    """No configured index or mirror serves the pinned file; the message is one line saying why."""


@dataclass(frozen=True)
class Listing:
    url: str            # where to download it (http(s) or file)
    where: str          # the index, find-links folder or mirror that lists it
    size: int | None    # as listed, where the index says
    sha256: str | None  # as listed, where the index says


def _normalise(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()  # PEP 503


def pip_environment() -> tuple[tuple[str, str], ...]:
    """The PIP_* variables: what, besides pip's files, decides where pip looks (a cache key)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PIP_")))


def pip_locations() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(indexes, find_links) as pip would use them for `pip download`: its config files and PIP_*
    variables, `download.` over `global.`, the environment over both."""
    return _pip_locations(pip_environment())


@lru_cache(maxsize=4)
def _pip_locations(environment: tuple[tuple[str, str], ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PIP_NO_INPUT": "1"}).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    values: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        head, sep, value = line.partition("=")
        if not sep or "." not in head:
            continue
        section, key = head.rsplit(".", 1)
        values.setdefault(key, {})[section] = " ".join(shlex.split(value))

    def pick(key: str) -> list[str]:
        scoped = values.get(key, {})
        chosen = next((scoped[s] for s in (":env:", "download", "global") if s in scoped), "")
        return chosen.split()

    if values.get("no-index", {}).get(":env:", "").lower() in ("1", "true", "yes"):
        indexes: list[str] = []
    else:
        indexes = (pick("index-url") or [PYPI])[:1] + pick("extra-index-url")
    return tuple(i.rstrip("/") for i in indexes), tuple(pick("find-links"))


class _Links(HTMLParser):
    """The <a href> links of a PEP 503 page or a find-links page: (text, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None and data.strip():
            self.links.append((data.strip(), self._href))
            self._href = None


def _open(url: str, accept: str | None = None, method: str = "GET"):
    headers = {"Accept": accept} if accept else {}
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method), timeout=TIMEOUT)


def _size_of(url: str) -> int | None:
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        return path.stat().st_size if path.is_file() else None
    try:
        with _open(url, method="HEAD") as head:
            length = head.headers.get("Content-Length")
        return int(length) if length else None
    except OSError:
        return None


def _from_links(page: str, base: str, filename: str, where: str) -> Listing | None:
    parser = _Links()
    parser.feed(page)
    for text, href in parser.links:
        url = urllib.parse.urljoin(base, href)
        name = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
        if filename in (text, name):
            fragment = urllib.parse.urlparse(url).fragment
            digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
            url = url.split("#", 1)[0]
            return Listing(url, where, _size_of(url), digest)
    return None


def _from_index(index: str, project: str, filename: str) -> Listing | None:
    page_url = f"{index}/{_normalise(project)}/"
    if page_url.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(page_url).path))
        page = folder / "index.html"
        if not page.is_file():
            return None
        return _from_links(page.read_text(errors="replace"), page.as_uri(), filename, index)
    try:
        with _open(page_url, "application/vnd.pypi.simple.v1+json, text/html;q=0.1") as resp:
            kind, body = resp.headers.get("Content-Type", ""), resp.read()
            base = resp.geturl()
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise
    if "json" in kind:
        for entry in json.loads(body)["files"]:
            if entry["filename"] == filename:
                url = urllib.parse.urljoin(base, entry["url"])
                size = entry.get("size")
                return Listing(url, index, int(size) if size is not None else _size_of(url), entry["hashes"].get("sha256"))
        return None
    return _from_links(body.decode(errors="replace"), base, filename, index)


def _from_find_links(location: str, filename: str) -> Listing | None:
    if "://" not in location or location.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path) if "://" in location else location)
        path = folder / filename
        return Listing(path.as_uri(), location, path.stat().st_size, None) if path.is_file() else None
    with _open(location) as resp:
        return _from_links(resp.read().decode(errors="replace"), resp.geturl(), filename, location)


def _short(location: str) -> str:
    parsed = urllib.parse.urlparse(location)
    return parsed.netloc + parsed.path if parsed.netloc else location


def pypi_listing(project: str, filename: str) -> Listing:
    indexes, find_links = pip_locations()
    errors = []
    for where in (*indexes, *find_links):
        try:
            found = _from_index(where, project, filename) if where in indexes else _from_find_links(where, filename)
        except (OSError, ValueError, KeyError) as err:
            errors.append(f"{_short(where)}: {type(err).__name__}")
            continue
        if found is not None:
            return found
    answered = [_short(w) for w in (*indexes, *find_links) if not any(e.startswith(f"{_short(w)}:") for e in errors)]
    if not indexes and not find_links:
        raise NotServed("pip is configured with no index (no-index), so it cannot be looked up")
    listed = "could not be looked up"
    if answered:
        others = f" nor pip's {len(answered) - 1} other location{'s' if len(answered) > 2 else ''}" if len(answered) > 1 else ""
        listed = f"not listed on {answered[0]}{others}"
    failed = f" ({'; '.join(errors)} did not answer)" if errors else ""
    raise NotServed(f"{listed}{failed}")


# ---------------------------------------------------------------- Debian
def _apt_record(project: str, version: str) -> dict[str, str] | None:
    if shutil.which("apt-cache") is None:
        return None
    done = subprocess.run(["apt-cache", "show", f"{project}={version}"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    record = {}
    for line in done.stdout.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            record[key] = value.strip()
    return record


def apt_mirrors() -> list[str]:
    """The archive URIs of apt's sources (one-line .list and deb822 .sources files)."""
    uris: list[str] = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("URIs:"):
                uris.extend(line.removeprefix("URIs:").split())
            elif line.startswith("deb "):
                parts = [p for p in line.split()[1:] if not p.startswith("[")]
                if parts:
                    uris.append(parts[0])
    return [u.rstrip("/") for u in dict.fromkeys(uris) if u.startswith(("http://", "https://", "file:"))]


def debian_listing(project: str, version: str, filename: str, pool: str) -> Listing:
    """apt's record of NAME=VERSION (no download), else the pool file on one of apt's mirrors."""
    record = _apt_record(project, version)
    mirrors = apt_mirrors()
    if record is not None and record.get("Filename"):
        url = f"{mirrors[0]}/{record['Filename']}" if mirrors else record["Filename"]
        return Listing(url, "apt", int(record["Size"]) if record.get("Size") else None, record.get("SHA256"))
    for mirror in mirrors:
        url = f"{mirror}/{pool.strip('/')}/{filename}"
        size = _size_of(url)
        if size is not None:
            return Listing(url, _short(mirror), size, None)
    where = ", ".join(_short(m) for m in mirrors) or "no mirror in apt's sources"
    raise NotServed(f"apt has no record of {project}={version} and {where} has no {pool}/{filename}")
