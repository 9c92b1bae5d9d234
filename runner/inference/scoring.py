"""Scoring with one model, no Ray: option ranking and greedy generation (used by the evaluate
stage's inference actors and directly by tests).

- accuracy, classification: the OPTIONS are ranked by the summed log-probability of
  ` option</s>` after the prompt, tokenised exactly as in training (runner.training.batching.encode_example);
  every (prompt, option) pair is one row of a right-padded, length-bucketed batch, and the LM head
  runs only at the positions that predict an option token;
- rouge_l, bleu (and accuracy without options): batched greedy generation, capped at
  `evaluation.max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from runner.models.architectures import decoder_layout
from runner.training.batching import IGNORE, collate_training, encode_example, encode_prompt, left_pad, length_buckets

RANK, GENERATE = "rank", "generate"


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _split(encoded: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids) of an encoded example: the prompt is what the labels ignore."""
    ids, labels = encoded
    cut = next((i for i, label in enumerate(labels) if label != IGNORE), len(labels))
    return ids[:cut], ids[cut:]


@torch.inference_mode()
def option_logprobs(model, tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]],
                    max_length: int, batch_size: int) -> list[list[float]]:
    """Summed log-probability of ` option</s>` after each prompt, for every option of every row,
    tokenised exactly as in training (runner.training.batching.encode_example).

    A prompt is encoded once and its key/value cache shared by all its options, which then cost
    only their own few tokens (`_shared_prompt_scores`); a row whose options truncate its prompt
    differently (a prompt near max_length) runs one sequence per option instead. The LM head and
    the softmax run only at the positions that predict an option token.
    """
    encoded = [[_split(encode_example(tokenizer, prompt, option, max_length)) for option in opts]
               for prompt, opts in zip(prompts, options)]
    out: list[list[float]] = [[0.0] * len(opts) for opts in options]
    shared = [r for r, parts in enumerate(encoded)
              if parts and parts[0][0] and all(p == parts[0][0] for p, _ in parts)]
    _shared_prompt_scores(model, encoded, shared, batch_size, tokenizer.pad_token_id, out)
    chosen = set(shared)
    _pair_scores(model, encoded, [r for r in range(len(encoded)) if r not in chosen], batch_size,
                 tokenizer.pad_token_id, out)
    return out


def _shared_prompt_scores(model, encoded, rows: list[int], batch_size: int, pad_id: int, out) -> None:
    device = _device_of(model)
    decoder, head = decoder_layout(model).decoder, model.get_output_embeddings()

    def logprobs(hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(head(hidden).float(), dim=-1).gather(1, targets.unsqueeze(1)).squeeze(1).double()

    for bucket in length_buckets([len(encoded[r][0][0]) for r in rows], batch_size):
        batch_rows = [rows[i] for i in bucket]
        prompt = {k: v.to(device) for k, v in left_pad([encoded[r][0][0] for r in batch_rows], pad_id).items()}
        result = decoder(**prompt, use_cache=True)
        cache, last = result.past_key_values, result.last_hidden_state[:, -1]
        # A sliding-window layer (Gemma 3, Mistral) keeps only its window and cannot be cropped back
        # to the prompt once prompt + option pass it, unless it records what it drops (after the prefill).
        if hasattr(cache, "activate_past_recording"):
            cache.activate_past_recording()
        lengths = prompt["attention_mask"].sum(dim=1)
        for slot in range(max(len(encoded[r]) for r in batch_rows)):
            targets = [encoded[r][slot][1] if slot < len(encoded[r]) else [] for r in batch_rows]
            present = [k for k, t in enumerate(targets) if t]
            first = logprobs(last[present], torch.tensor([targets[k][0] for k in present], device=device))
            for k, value in zip(present, first.tolist()):
                out[batch_rows[k]][slot] = value
            feed = [t[:-1] for t in targets]  # each fed token predicts the next one of the option
            width = max(len(f) for f in feed)
            if width == 0:
                continue
            ids = torch.full((len(feed), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(feed), width), dtype=torch.long)
            for k, f in enumerate(feed):
                ids[k, :len(f)] = torch.as_tensor(f, dtype=torch.long)
                mask[k, :len(f)] = 1
            ids, mask = ids.to(device), mask.to(device)
            hidden = decoder(input_ids=ids, attention_mask=torch.cat([prompt["attention_mask"], mask], dim=1),
                             position_ids=lengths[:, None] + torch.arange(width, device=device),
                             past_key_values=cache, use_cache=True).last_hidden_state
            cache.crop(-width)  # back to the prompt alone for the next option
            k_idx, pos = mask.nonzero(as_tuple=True)
            nxt = torch.tensor([targets[k][p + 1] for k, p in zip(k_idx.tolist(), pos.tolist())], device=device)
            per_row = torch.zeros(len(feed), dtype=torch.float64, device=device).index_add_(
                0, k_idx, logprobs(hidden[k_idx, pos], nxt))
            for k in present:
                out[batch_rows[k]][slot] += float(per_row[k])


def _pair_scores(model, encoded, rows: list[int], batch_size: int, pad_id: int, out) -> None:
    """One right-padded sequence per (prompt, option), length-bucketed."""
    pairs = [(r, j, (p + t, [IGNORE] * len(p) + t)) for r in rows for j, (p, t) in enumerate(encoded[r])]
    device = _device_of(model)
    decoder, head = decoder_layout(model).decoder, model.get_output_embeddings()
    for bucket in length_buckets([len(ids) for _, _, (ids, _) in pairs], batch_size):
        batch = {k: v.to(device) for k, v in collate_training([pairs[i][2] for i in bucket], pad_id).items()}
        hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         use_cache=False).last_hidden_state
        labels = batch["labels"][:, 1:]
        k_idx, cols = (labels != IGNORE).nonzero(as_tuple=True)
        logprobs = torch.log_softmax(head(hidden[k_idx, cols]).float(), dim=-1)
        picked = logprobs.gather(1, labels[k_idx, cols].unsqueeze(1)).squeeze(1).double()
        per_pair = torch.zeros(len(bucket), dtype=torch.float64, device=picked.device).index_add_(0, k_idx, picked)
        for i, total in zip(bucket, per_pair.tolist()):
            r, j, _ = pairs[i]
            out[r][j] = total


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, max_length: int,
                    batch_size: int) -> list[str]:
    """Greedy continuations (special tokens dropped, whitespace stripped), in the order of `prompts`.

    Prompts are tokenised as in training (the special prefix, then the text), cut from the left to
    leave room for the new tokens, and left-padded so every row continues from its own last token.
    """
    keep = max(1, max_length - max_new_tokens) if max_new_tokens < max_length else max(1, max_length // 2)
    encoded = [encode_prompt(tokenizer, p, keep) or [tokenizer.eos_token_id] for p in prompts]
    device, out = _device_of(model), [""] * len(prompts)
    for bucket in length_buckets([len(ids) for ids in encoded], batch_size):
        batch = left_pad([encoded[i] for i in bucket], tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        generated = model.generate(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                                   do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        for i, text in zip(bucket, texts):
            out[i] = text.strip()
    return out


def predict(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int, max_length: int,
            batch_size: int) -> list[str]:
    """One prediction per row: the top-ranked option ("rank" rows) or the greedy output ("generate")."""
    preds = [""] * len(rows)
    ranked = [i for i, r in enumerate(rows) if r["mode"] == RANK]
    if ranked:
        scores = option_logprobs(model, tokenizer, [rows[i]["prompt"] for i in ranked],
                                 [rows[i]["options"] for i in ranked], max_length, batch_size)
        for i, s in zip(ranked, scores):
            preds[i] = rows[i]["options"][max(range(len(s)), key=s.__getitem__)]
    generated = [i for i, r in enumerate(rows) if r["mode"] == GENERATE]
    if generated:
        texts = greedy_generate(model, tokenizer, [rows[i]["prompt"] for i in generated],
                                max_new_tokens, max_length, batch_size)
        for i, text in zip(generated, texts):
            preds[i] = text
    return preds
