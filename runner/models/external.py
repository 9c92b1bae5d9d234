"""Published experimental models (model.experimental): what each one is and where its files are.

An entry is loaded, never trained: a peft adapter of the base (a folder or hub repo holding
adapter_config.json, swapped onto the already-loaded base like a control), a full checkpoint (a
second set of weights), or a GGUF file (converted once to a cached safetensors folder, like the
built-ins, then a full checkpoint). Everything here reads metadata only: no weights are loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from runner.config import ExternalModelConfig, stable_hash
from runner.models.resolve import ModelUnavailableError, cache_root, looks_like_path

ADAPTER, FULL, GGUF = "adapter", "full", "gguf"


@dataclass(frozen=True)
class ExternalModel:
    """One model.experimental entry, located: `path` is what the loaders take (a local folder or file, or
    the hub id), `kind` one of ADAPTER, FULL, GGUF."""

    label: str
    name: str
    revision: str | None
    gguf_file: str | None
    kind: str
    path: str

    def as_dict(self) -> dict:
        return asdict(self)


def _local(name: str) -> Path | None:
    path = Path(name).expanduser()
    return path if looks_like_path(name) or path.exists() else None


def _hub_file(repo: str, filename: str, revision: str | None) -> str | None:
    """The cached or downloaded path of one small file of a hub repo, None when the repo has no such file."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return hf_hub_download(repo, filename, revision=revision)
    except LocalEntryNotFoundError:
        return None  # offline and not cached: the caller's next read says so in one line
    except EntryNotFoundError:
        return None
    except Exception as err:
        raise ModelUnavailableError(
            f"model.experimental {repo!r}: the hub did not answer for {filename} ({type(err).__name__}); download it "
            f"where there is network (`hf download {repo}`) or pass a local folder") from None


def locate(cfg: ExternalModelConfig) -> ExternalModel:
    """What the entry is (adapter, full checkpoint or GGUF) and where its files are, from metadata alone."""
    where = f"model.experimental {cfg.name!r}"

    def model(kind: str, path: str | Path) -> ExternalModel:
        return ExternalModel(cfg.model_label, cfg.name, cfg.revision, cfg.gguf_file, kind, str(path))

    local = _local(cfg.name)
    if local is not None:
        if local.is_file():
            if local.suffix != ".gguf":
                raise ModelUnavailableError(f"{where}: a file that is not .gguf; pass a model folder, an adapter "
                                            "folder, a .gguf file or a hub id")
            return model(GGUF, local.resolve())
        if not local.is_dir():
            raise ModelUnavailableError(f"{where}: no such file or folder; pass a model folder (config.json and "
                                        "weights), a peft adapter folder (adapter_config.json), a .gguf file or a hub id")
        if cfg.gguf_file:
            if not (local / cfg.gguf_file).is_file():
                raise ModelUnavailableError(f"{where}: no {cfg.gguf_file} in that folder; fix gguf_file")
            return model(GGUF, (local / cfg.gguf_file).resolve())
        if (local / "adapter_config.json").is_file():
            return model(ADAPTER, local.resolve())
        if (local / "config.json").is_file():
            return model(FULL, local.resolve())
        raise ModelUnavailableError(f"{where}: the folder holds neither config.json (a full model) nor "
                                    "adapter_config.json (a peft adapter); pass the folder save_pretrained wrote")
    if "/" not in cfg.name:
        raise ModelUnavailableError(f"{where}: neither a local path nor a hub id like 'meta-llama/Llama-2-7b-chat-hf'")
    if cfg.gguf_file:
        return model(GGUF, cfg.name)
    if _hub_file(cfg.name, "adapter_config.json", cfg.revision):
        return model(ADAPTER, cfg.name)
    return model(FULL, cfg.name)


def config_file(model: ExternalModel) -> Path | None:
    """The local path of the model's config.json (adapter_config.json for an adapter); None for a GGUF."""
    name = "adapter_config.json" if model.kind == ADAPTER else "config.json"
    if model.kind == GGUF:
        return None
    local = Path(model.path)
    if local.is_dir():
        return local / name
    cached = _hub_file(model.path, name, model.revision)
    if cached is None:
        raise ModelUnavailableError(f"model.experimental {model.name!r}: {name} is neither cached nor reachable; "
                                    f"download it where there is network (`hf download {model.name}`)")
    return Path(cached)


def gguf_path(model: ExternalModel) -> Path:
    """The local .gguf file (downloaded first from a hub repo)."""
    if Path(model.path).is_file():
        return Path(model.path)
    cached = _hub_file(model.path, model.gguf_file or "", model.revision)
    if cached is None:
        raise ModelUnavailableError(f"model.experimental {model.name!r}: {model.gguf_file} is neither cached nor "
                                    "reachable; download it or pass the local .gguf file")
    return Path(cached)


def fingerprint(models: list[ExternalModel]) -> str:
    """Identifies the external models' files without reading them (names, sizes, modification times of a
    local folder's top-level files; the hub id and revision otherwise): a stage built from them is
    redone when one changes."""
    digest = hashlib.sha256()
    for model in models:
        digest.update(json.dumps(model.as_dict(), sort_keys=True).encode())
        local = Path(model.path)
        files = sorted(local.iterdir()) if local.is_dir() else [local] if local.is_file() else []
        for file in files:
            if file.is_file():
                info = file.stat()
                digest.update(f"{file.name}:{info.st_size}:{info.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def loadable(model: ExternalModel) -> str:
    """What `from_pretrained` or peft takes for this model: a GGUF is converted once into a cached
    safetensors folder (atomically published, so concurrent callers never see half a model)."""
    if model.kind != GGUF:
        return model.path
    from runner.models.resolve import converted

    source = gguf_path(model)
    info = source.stat()
    final = cache_root() / "models" / f"external-{stable_hash([str(source.resolve()), info.st_size, info.st_mtime_ns])}"
    if (final / "config.json").exists():
        return str(final)
    return str(converted(source, final))


def hub_revision(model: ExternalModel) -> str | None:
    """The revision the loaders pass for a hub model (None for local files)."""
    return None if os.path.exists(model.path) else model.revision
