"""The fast extraction path must give exactly what the naive path gives, row by row."""

import torch
from peft import LoraConfig, get_peft_model

from runner.config import load_config, preset_path
from runner.inference.encoder import HiddenStateEncoder
from runner.models import load_base_model, load_tokenizer, resolve_model

PROMPTS = [
    "Is the sky blue? OPTIONS: - yes - no",
    "Translate to German: the small house is red and the garden is green.",
    "Premise: a man plays a guitar on a stage in front of many people. Hypothesis: a man plays. Yes or no?",
    "Hi",
]


def naive_last_token_states(model, tokenizer, prompt: str) -> torch.Tensor:
    """The authors' way: batch size 1, every hidden state copied out, then the last token kept."""
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        states = model(**ids, output_hidden_states=True).hidden_states
    return torch.stack([h[0, -1] for h in states]).float()


def test_hooks_with_left_padding_match_unpadded_hidden_states(tmp_path):
    config = load_config(preset_path("tiny"))
    model_dir = resolve_model(config.model)
    tokenizer = load_tokenizer(model_dir)
    torch.manual_seed(0)
    tuned = get_peft_model(load_base_model(model_dir, "cpu", torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    tuned.save_pretrained(tmp_path / "adapter")

    encoder = HiddenStateEncoder.load(model_dir, "cpu", torch.float32, {"tuned": str(tmp_path / "adapter")},
                                      max_length=64, batch_size=3)
    base_states = encoder.encode(PROMPTS, adapter=None)
    tuned_states = encoder.encode(PROMPTS, adapter="tuned")

    base = load_base_model(model_dir, "cpu", torch.float32).eval()
    layers = config.model.tiny.num_layers + 1
    assert base_states.shape == (len(PROMPTS), layers, config.model.tiny.hidden_size)
    for row, prompt in enumerate(PROMPTS):
        torch.testing.assert_close(torch.from_numpy(base_states[row]), naive_last_token_states(base, tokenizer, prompt),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(tuned_states[row]),
                                   naive_last_token_states(tuned.eval(), tokenizer, prompt), atol=1e-4, rtol=1e-4)
    # The adapter really changes the states, and switching back to the base model undoes it.
    assert not torch.allclose(torch.from_numpy(base_states[:, 1:]), torch.from_numpy(tuned_states[:, 1:]))
    torch.testing.assert_close(torch.from_numpy(encoder.encode(PROMPTS, adapter=None)), torch.from_numpy(base_states))
