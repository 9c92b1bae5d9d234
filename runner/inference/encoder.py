"""Last-token hidden states at every layer, fast, without Ray or polars (a GPU box can run it bare).

Prompts are tokenised once, sorted by length and cut into batches of at most `batch_size` rows
and `max_tokens` padded tokens, so long prompts get small batches and short ones big batches,
and almost no compute goes to padding. Rows are left-padded (the last real token at position -1,
positions counted from the first real token). Forward hooks keep only the last position of each
layer (runner.models.architectures.LastTokenTaps); the LM head never runs. States stay on the device
until the end: one copy to the host per call, not one per batch.
"""

from __future__ import annotations

import numpy as np
import torch

from runner.models import AdaptedModel
from runner.models.architectures import LastTokenTaps, decoder_layout
from runner.training.batching import encode_prompt, left_pad


def token_batches(lengths: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut whenever a batch would exceed `batch_size` rows or
    `max_tokens` tokens once padded to its longest row."""
    order = np.argsort(np.asarray(lengths), kind="stable").tolist()
    batches, current, longest = [], [], 0
    for i in order:
        width = max(longest, lengths[i])
        if current and (len(current) == batch_size or width * (len(current) + 1) > max_tokens):
            batches.append(current)
            current, width = [], lengths[i]
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches


class HiddenStateEncoder:
    """Base model + adapters on one device; `encode` returns last-token states per layer."""

    def __init__(self, models: AdaptedModel, max_length: int, batch_size: int, max_tokens: int | None = None):
        self.models, self.tokenizer = models, models.tokenizer
        self.device, self.max_length, self.batch_size = models.device, max_length, batch_size
        self.max_tokens = max_tokens or batch_size * max_length
        self.layout = decoder_layout(models.model)
        self.taps = LastTokenTaps(self.layout)

    @classmethod
    def load(cls, model_dir: str, device: str, dtype: torch.dtype, adapters: dict[str, str], max_length: int,
             batch_size: int, max_tokens: int | None = None) -> HiddenStateEncoder:
        return cls(AdaptedModel(model_dir, device, dtype, adapters), max_length, batch_size, max_tokens)

    def tokenize(self, prompts: list[str]) -> list[list[int]]:
        return [encode_prompt(self.tokenizer, p, self.max_length) for p in prompts]

    @torch.inference_mode()
    def encode(self, prompts: list[str], adapter: str | None = None) -> np.ndarray:
        """[n, layers, d] float32, in the order of `prompts`, through the base (None) or `adapter`."""
        with self.models.use(adapter):
            return self.encode_current(prompts)

    @torch.inference_mode()
    def encode_current(self, prompts: list[str]) -> np.ndarray:
        """The same, through whichever model is active now."""
        encoded = self.tokenize(prompts)
        out = torch.empty((len(prompts), self.taps.num_layers, self.layout.hidden_size), dtype=torch.float32,
                          device=self.device)
        for batch in token_batches([len(ids) for ids in encoded], self.batch_size, self.max_tokens):
            inputs = left_pad([encoded[i] for i in batch], self.tokenizer.pad_token_id)
            self.layout.decoder(**{k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}, use_cache=False)
            out[torch.as_tensor(batch, device=self.device)] = self.taps.collect()
        return out.cpu().numpy()
