"""Every supported decoder family: taps equal HF's hidden states, LoRA trains, others fail in one line.

Real transformers models built from tiny configs with random weights (float32, CPU), fed raw
token ids through the same left-padding collate that extraction uses.
"""

import contextlib
import math

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, BertConfig, BertForMaskedLM, T5Config, T5ForConditionalGeneration

from runner.models.architectures import (
    TESTED_FAMILIES,
    LastTokenTaps,
    UnsupportedArchitecture,
    decoder_layout,
    default_lora_targets,
    tiny_config,
)
from runner.training.batching import IGNORE, collate_training
from tests.helpers_test_only import collate_left_padded

SHAPE = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, vocab_size=128, max_positions=128)
PAD = 0
# Lengths differ so every row but the longest is left-padded; one row is a single token.
SEQUENCES = [torch.randint(1, SHAPE["vocab_size"], (n,), generator=torch.Generator().manual_seed(n)).tolist()
             for n in (5, 11, 1, 8)]


class IdTokenizer:
    """Enough of a tokenizer for `collate_left_padded`: a prompt is its token ids, space-separated."""

    pad_token_id = PAD

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": [int(tok) for tok in text.split()]}


def build(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config(family, **SHAPE), dtype=torch.float32).eval()


@torch.inference_mode()
def tapped_states(model: torch.nn.Module, through_decoder: bool = True) -> torch.Tensor:
    """[n, layers, d] from one left-padded batch, the way extraction runs it."""
    layout = decoder_layout(model)
    taps = LastTokenTaps(layout)
    batch = collate_left_padded(IdTokenizer(), [" ".join(map(str, s)) for s in SEQUENCES], max_length=64)
    (layout.decoder if through_decoder else model)(**batch, use_cache=False)
    states = taps.collect()
    taps.remove()
    return states


@torch.inference_mode()
def hf_last_token_states(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """HF's own `output_hidden_states`, one unpadded prompt at a time, last token kept."""
    states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    return torch.stack([h[0, -1] for h in states]).float()


def assert_matches_hf(model: torch.nn.Module, states: torch.Tensor) -> None:
    assert states.shape == (len(SEQUENCES), SHAPE["num_layers"] + 1, SHAPE["hidden_size"])
    for row, ids in enumerate(SEQUENCES):
        torch.testing.assert_close(states[row], hf_last_token_states(model, ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", TESTED_FAMILIES)
def test_taps_on_left_padded_batch_equal_hf_hidden_states(family):
    base = build(family)
    layout = decoder_layout(base)
    assert len(layout.blocks) == SHAPE["num_layers"] and layout.hidden_size == SHAPE["hidden_size"]
    assert layout.final_norm is not None and layout.decoder is not base
    base_states = tapped_states(base)
    assert_matches_hf(base, base_states)

    # A random, non-zero adapter on peft's default targets for this family.
    torch.manual_seed(1)
    tuned = get_peft_model(base, LoraConfig(r=4, target_modules=default_lora_targets(base.config.model_type),
                                            init_lora_weights=False)).eval()
    assert decoder_layout(tuned).decoder is layout.decoder
    assert decoder_layout(tuned.base_model).decoder is layout.decoder  # the LoraModel alone
    tuned_states = tapped_states(tuned)
    assert_matches_hf(tuned, tuned_states)
    # Hooks fire the same whether the stack or the whole peft model is called.
    torch.testing.assert_close(tapped_states(tuned, through_decoder=False), tuned_states, atol=0, rtol=0)
    # The adapter really moved every layer after the embeddings.
    assert (tuned_states[:, 1:] - base_states[:, 1:]).abs().amax(dim=(0, 2)).min() > 1e-4


@pytest.mark.parametrize("family", TESTED_FAMILIES)
def test_one_lora_step_trains_adapters_and_leaves_base_frozen(family):
    """The project's own training step (runner.training.trainer: peft LoRA on the family's default targets
    inside a DeepSpeed ZeRO-2 engine) on each family."""
    from analysis.roles import CONTROL
    from runner.config import load_config, preset_path
    from runner.plan import TrainJob
    from runner.training.trainer import Base, Trainer, ensure_process_group

    ensure_process_group("cpu")
    exp = load_config(preset_path("tiny"), {"lora.target_modules": None, "training.lr": 1e-2})
    # Prompt tokens masked out of the loss, rows right-padded: the training collate.
    encoded = [(ids, [IGNORE] * (len(ids) // 2) + ids[len(ids) // 2:]) for ids in SEQUENCES if len(ids) > 1]
    job = TrainJob.standalone(exp, CONTROL, [family], max_steps=4, batch_size=3, workers=1, cpus_per_worker=1,
                              gpus_per_worker=0, key="k", seed=0)
    frozen_before = {name: p.detach().clone() for name, p in build(family).named_parameters()}
    trainer = Trainer(job, Base(build(family).train(), "cpu"), encoded, encoded, pad_id=PAD)
    targets = set(default_lora_targets(trainer.model.base_model.model.config.model_type))
    lora = {name: p for name, p in trainer.model.named_parameters() if "lora_" in name}
    assert lora and all(p.requires_grad for p in lora.values())
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in lora} == targets
    lora_before = {name: p.detach().clone() for name, p in lora.items()}
    # lora_B starts at zero, so lora_A only gets a gradient from the second step on.
    losses = [trainer.train_step() for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(losses)))
    unchanged = [name for name, p in lora.items() if torch.equal(p, lora_before[name])]
    assert not unchanged, f"LoRA parameters did not train: {unchanged}"
    trainer.close()
    after = dict(trainer.base.model.named_parameters())
    moved = [name for name, p in frozen_before.items() if not torch.equal(after[name], p)]
    assert not moved, f"frozen base weights changed: {moved}"


def one_line_error(model: torch.nn.Module) -> str:
    with pytest.raises(UnsupportedArchitecture) as err:
        decoder_layout(model)
    message = str(err.value)
    assert "\n" not in message and "supported families: " in message
    return message


def test_encoder_only_and_encoder_decoder_models_fail_in_one_line():
    bert = BertForMaskedLM(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, vocab_size=128))
    assert one_line_error(bert).startswith("bert (BertForMaskedLM): cannot find ")
    t5 = T5ForConditionalGeneration(T5Config(d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4, vocab_size=128))
    assert one_line_error(t5).startswith("t5 (T5ForConditionalGeneration): cannot find a decoder-only stack")


def test_default_lora_targets_come_from_peft_and_unknown_types_fail():
    assert default_lora_targets("llama") == ["q_proj", "v_proj"]
    assert default_lora_targets("gpt2") == ["c_attn"]
    assert default_lora_targets("gpt_neox") == ["query_key_value"]
    default_lora_targets("llama").append("o_proj")  # a copy: peft's table stays as it was
    assert default_lora_targets("llama") == ["q_proj", "v_proj"]
    with pytest.raises(UnsupportedArchitecture, match=r"^no-such-model: peft has no default LoRA target") as err:
        default_lora_targets("no-such-model")
    assert "\n" not in str(err.value)
    with pytest.raises(UnsupportedArchitecture, match=r"^bert: no tiny config"):
        tiny_config("bert", **SHAPE)


def test_collect_refuses_taps_from_more_than_one_pass():
    model = build("llama")
    taps = LastTokenTaps(decoder_layout(model))
    ids = torch.tensor([SEQUENCES[0]])
    with torch.inference_mode():
        model(input_ids=ids)
        model(input_ids=ids)
    with pytest.raises(RuntimeError, match="expected 3 taps from one forward pass, got 6"):
        taps.collect()
    taps.remove()
    with torch.inference_mode():
        model(input_ids=ids)
    assert taps.taps == []


@pytest.mark.parametrize("family", ["gemma", "gemma3_text"])
def test_gemma_layer_zero_is_the_scaled_embedding(family):
    """Gemma's hidden_states[0] is the embedding row times sqrt(d), scaled inside the embedding
    module: the taps record that, not the raw table row."""
    model = build(family)
    states = tapped_states(model)
    table = model.get_input_embeddings().weight.detach()
    last = torch.tensor([ids[-1] for ids in SEQUENCES])
    torch.testing.assert_close(states[:, 0], table[last] * SHAPE["hidden_size"] ** 0.5, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(states[:, 0], table[last])


class ScoringTokenizer(IdTokenizer):
    """IdTokenizer with what scoring needs: an end-of-sequence id and decoding."""

    eos_token_id = 1

    def batch_decode(self, rows, skip_special_tokens: bool = True) -> list[str]:
        return [" ".join(str(int(t)) for t in row) for row in rows]


def test_the_lm_head_runs_only_where_a_token_is_scored():
    """Gemma 3's head is a 262k-wide projection, ~170M multiply-adds per position: training, option
    ranking and greedy generation must apply it only at the positions they score, and extraction
    never (runner.training.trainer.target_loss, runner.inference.scoring, runner.inference.encoder)."""
    from types import SimpleNamespace

    from runner.inference.encoder import HiddenStateEncoder
    from runner.inference.scoring import greedy_generate, option_logprobs
    from runner.training.trainer import target_loss

    model = build("gemma3_text")
    seen: list[tuple[int, ...]] = []  # the leading shape of every input the head projects
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[:-1])))
    tok = ScoringTokenizer()

    encoded = [(ids, [IGNORE] * (len(ids) - 2) + ids[-2:]) for ids in SEQUENCES if len(ids) > 2]
    batch = collate_training(encoded, PAD)
    target_loss(model, **batch)
    assert seen == [(2 * len(encoded),)]  # the two target tokens of each row, none of its prompt

    seen.clear()
    models = SimpleNamespace(model=model, tokenizer=tok, device="cpu", use=lambda adapter: contextlib.nullcontext())
    HiddenStateEncoder(models, max_length=64, batch_size=2).encode([" ".join(map(str, s)) for s in SEQUENCES])
    assert seen == []

    prompts, options = ["5 6 7 8 9 10", "11 12"], [["3 4", "20"], ["30 31 32"]]
    option_logprobs(model, tok, prompts, options, max_length=64, batch_size=4)
    assert sum(math.prod(shape) for shape in seen) == sum(len(o.split()) + 1 for opts in options for o in opts)

    torch.manual_seed(1)
    tuned = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).eval()
    for lm in (model, tuned):  # the evaluate stage generates through the peft wrapper
        seen.clear()
        greedy_generate(lm, tok, prompts, max_new_tokens=3, max_length=64, batch_size=4)
        assert seen and all(shape[1] == 1 for shape in seen), seen  # the prompt's positions never reach the head


@pytest.mark.parametrize("family", ["gemma3_text", "llama"])
def test_option_scores_with_a_shared_prompt_cache_equal_one_forward_per_option(family):
    """The prompt's key/value cache, shared by its options and cropped back after each, gives the
    scores of a plain forward per (prompt, option), also when prompt + option pass Gemma 3's
    sliding window (8 tokens in the tiny model) and the window layers must give back what they dropped."""
    from runner.inference.scoring import option_logprobs

    model, tok = build(family), ScoringTokenizer()
    prompts = ["5 6 7 8 9 10 11 12 13", "14 15", "16 17 18 19 20 21"]
    options = [["3 4", "20 21 22 23"], ["30 31 32 33 34 35 36 37"], ["40", "41 42"]]
    scores = option_logprobs(model, tok, prompts, options, max_length=64, batch_size=4)
    with torch.inference_mode():
        for prompt, opts, got in zip(prompts, options, scores):
            for option, value in zip(opts, got):
                p, t = tok(prompt)["input_ids"], tok(option)["input_ids"] + [tok.eos_token_id]
                logits = model(input_ids=torch.tensor([p + t])).logits[0, len(p) - 1:-1]
                expected = torch.log_softmax(logits.double(), -1).gather(1, torch.tensor(t)[:, None]).sum()
                assert value == pytest.approx(float(expected), abs=1e-4), (prompt, option)
