"""Tokenised batches for training and extraction, shared by every device path.

Training batches are right-padded with the prompt masked out of the loss. Extraction batches
are left-padded so each row's last real token sits at position -1, with position ids counted
from the first real token, so a padded row is encoded exactly like the same row alone.

Little compute goes to padding: training batches are grouped by length within a window of
`length_window` batches (`BatchSchedule`), evaluation and extraction batches by `length_buckets`;
`padding_fraction` measures both. A training batch stays a pure function of the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

IGNORE = -100


def special_prefix(tokenizer) -> list[int]:
    """The tokens the tokenizer puts before every text: Gemma's and Llama's <bos>, nothing for
    SmolLM2 or GPT-2. Every path (training, scoring, generation, extraction) starts a prompt with
    them, as the model was pre-trained; without its <bos> Gemma 3's loss is ~0.7 nats higher."""
    cached = getattr(tokenizer, "_layerwise_prefix", None)
    if cached is None:
        ids = tokenizer("", add_special_tokens=True)["input_ids"]
        bos = getattr(tokenizer, "bos_token_id", None)
        cached = ids[:1] if ids and bos is not None and ids[0] == bos else []
        try:
            tokenizer._layerwise_prefix = cached
        except AttributeError:  # a tokenizer that refuses new attributes: recompute next time
            pass
    return list(cached)


def encode_prompt(tokenizer, prompt: str, keep: int) -> list[int]:
    """The prompt's ids, its special prefix kept and the text cut from the left to `keep` ids in
    all (so the question and options at the end survive, and so does <bos>)."""
    prefix = special_prefix(tokenizer)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    room = max(keep - len(prefix), 0)
    return prefix + (ids[-room:] if room else [])


def encode_example(tokenizer, prompt: str, target: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of `<prefix> prompt target</s>`, truncating the prompt from the left."""
    target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    target_ids = target_ids[: max_length // 2]
    prompt_ids = encode_prompt(tokenizer, prompt, max_length - len(target_ids))
    return prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids


def collate_training(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


@lru_cache(maxsize=8)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class BatchSchedule:
    """The training batches of one job: batch `step` is a pure function of (step, seed, lengths).

    The example stream is a sequence of seeded epoch permutations (`_epoch_order`). Window `w`
    takes the stream's next `window` x `batch_size` examples, sorts them by length, cuts them into
    `window` batches and shuffles those batches' order with a generator seeded by (seed, w); so
    every batch holds examples of similar length, yet batch lengths still vary from step to step.
    Within a batch the examples are sorted by length, so each micro-batch (a consecutive slice of
    it) pads little too. A job resumed at any step sees exactly the batches it would have seen.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window: int = 1):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.seed, self.window = batch_size, seed, max(1, window)
        self._cache: dict[int, list[np.ndarray]] = {}

    def _window(self, w: int) -> list[np.ndarray]:
        if w not in self._cache:
            n, size = len(self.lengths), self.window * self.batch_size
            positions = np.arange(w * size, (w + 1) * size)
            stream = np.empty(size, dtype=np.int64)
            for epoch in np.unique(positions // n):
                here = positions // n == epoch
                stream[here] = _epoch_order(n, self.seed, int(epoch))[positions[here] % n]
            ordered = stream[np.argsort(self.lengths[stream], kind="stable")]
            batches = [ordered[i * self.batch_size:(i + 1) * self.batch_size] for i in range(self.window)]
            order = np.random.default_rng([self.seed, w, 1]).permutation(self.window)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[w] = [batches[i] for i in order]
        return self._cache[w]

    def indices(self, step: int) -> list[int]:
        """Example indices of global batch `step`, shortest first."""
        return self._window(step // self.window)[step % self.window].tolist()

    def micro_batches(self, step: int, rank: int, world: int, micro: int) -> list[list[int]]:
        """This rank's micro-batches of batch `step`, in accumulation order.

        The sorted batch is cut into world x accumulation consecutive slices; rank r takes slices
        r, r + world, ... so every rank gets short and long rows alike (no rank waits on the others)."""
        batch = self.indices(step)
        slices = [batch[i: i + micro] for i in range(0, len(batch), micro)]
        return slices[rank::world]

    def stats(self, steps: int, micro: int, tasks: Sequence[str] | None = None) -> dict:
        """What steps [0, steps) fed to the model over all ranks: examples, real tokens, padding."""
        names, codes = np.unique(np.asarray(tasks if tasks is not None else [""] * len(self.lengths)),
                                 return_inverse=True)
        counts = np.zeros(len(names), dtype=np.int64)
        real = padded = 0
        for step in range(steps):
            batch = np.asarray(self.indices(step))
            lengths = self.lengths[batch]
            real += int(lengths.sum())
            padded += sum(int(lengths[i: i + micro].max()) * len(lengths[i: i + micro])
                          for i in range(0, len(lengths), micro))
            counts += np.bincount(codes[batch], minlength=len(names))
        by_task = {str(name): int(c) for name, c in zip(names, counts) if c} if tasks is not None else {}
        return {"examples_seen": steps * self.batch_size, "tokens_seen": real,
                "padding_fraction": 1 - real / padded if padded else 0.0, "examples_by_task": by_task}


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the padded batch slots that hold padding (batches of indices into `lengths`)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    slots = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if len(batch))
    return 1 - real / slots if slots else 0.0


def left_pad(encoded: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Token id rows left-padded to one width: every row's last real token sits at position -1,
    and position ids count from each row's first real token, so a padded row is encoded exactly
    like the same row alone."""
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids):] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little compute goes to padding."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
