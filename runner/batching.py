"""Tokenised batches for training and extraction, shared by every device path.

Training batches are right-padded with the prompt masked out of the loss. Extraction batches
are left-padded so each row's last real token sits at position -1, with position ids counted
from the first real token, so a padded row is encoded exactly like the same row alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

IGNORE = -100


def encode_example(tokenizer, prompt: str, target: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of `prompt target</s>`, truncating the prompt from the left."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    target_ids = target_ids[: max_length // 2]
    prompt_ids = prompt_ids[-(max_length - len(target_ids)):]
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


def step_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Example indices of global batch `step`: a pure function of the step, so a job resumed
    from a checkpoint sees exactly the batches an uninterrupted job would have seen."""
    positions = range(step * batch_size, (step + 1) * batch_size)
    return [int(_epoch_order(n, seed, pos // n)[pos % n]) for pos in positions]


def collate_left_padded(tokenizer, prompts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"][-max_length:] for p in prompts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        mask[row, width - len(ids):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little compute goes to padding."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
