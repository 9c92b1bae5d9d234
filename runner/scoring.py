"""Scoring with one model, no Ray: option ranking and greedy generation (used by the evaluate
stage's inference actors and directly by tests).

- accuracy, classification: the OPTIONS are ranked by the summed log-probability of
  ` option</s>` after the prompt, tokenised exactly as in training (runner.batching.encode_example);
  every (prompt, option) pair is one row of a right-padded, length-bucketed batch, and the LM head
  runs only at the positions that predict an option token;
- rouge_l, bleu (and accuracy without options): batched greedy generation, capped at
  `evaluation.max_new_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from runner.architectures import decoder_layout
from runner.batching import IGNORE, collate_training, encode_example, length_buckets

RANK, GENERATE = "rank", "generate"


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def option_logprobs(model, tokenizer, prompts: Sequence[str], options: Sequence[Sequence[str]],
                    max_length: int, batch_size: int) -> list[list[float]]:
    """Summed log-probability of ` option</s>` after each prompt, for every option of every row.

    The decoder runs once per (prompt, option) pair; the LM head and the softmax over the
    vocabulary run only at the few positions that predict an option token, not at every position.
    """
    pairs = [(row, encode_example(tokenizer, prompt, option, max_length))
             for row, (prompt, opts) in enumerate(zip(prompts, options)) for option in opts]
    totals = torch.empty(len(pairs), dtype=torch.float64)
    device = _device_of(model)
    decoder, head = decoder_layout(model).decoder, model.get_output_embeddings()
    for bucket in length_buckets([len(ids) for _, (ids, _) in pairs], batch_size):
        batch = {k: v.to(device) for k, v in collate_training([pairs[i][1] for i in bucket],
                                                               tokenizer.pad_token_id).items()}
        hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         use_cache=False).last_hidden_state
        labels = batch["labels"][:, 1:]
        rows, cols = (labels != IGNORE).nonzero(as_tuple=True)
        logprobs = torch.log_softmax(head(hidden[rows, cols]).float(), dim=-1)
        picked = logprobs.gather(1, labels[rows, cols].unsqueeze(1)).squeeze(1).double()
        per_row = torch.zeros(len(bucket), dtype=torch.float64, device=picked.device).index_add_(0, rows, picked)
        totals[bucket] = per_row.cpu()
    out: list[list[float]] = [[] for _ in prompts]
    for (row, _), total in zip(pairs, totals.tolist()):
        out[row].append(total)
    return out


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, max_length: int,
                    batch_size: int) -> list[str]:
    """Greedy continuations (special tokens dropped, whitespace stripped), in the order of `prompts`.

    Prompts are tokenised as in training (no special tokens), cut from the left to leave room for
    the new tokens, and left-padded so every row continues from its own last token.
    """
    keep = max(1, max_length - max_new_tokens) if max_new_tokens < max_length else max(1, max_length // 2)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"][-keep:] or [tokenizer.eos_token_id]
               for p in prompts]
    device, out = _device_of(model), [""] * len(prompts)
    for bucket in length_buckets([len(ids) for ids in encoded], batch_size):
        width = max(len(encoded[i]) for i in bucket)
        input_ids = torch.full((len(bucket), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(bucket), width), dtype=torch.long)
        for row, i in enumerate(bucket):
            input_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
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
