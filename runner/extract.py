"""The `extract` stage: last-token hidden states at every layer, streamed through Ray Data.

Each actor loads the base model once and swaps LoRA adapters in place (peft), so the
pretrained model, E and every C_t share one copy of the weights. Forward hooks keep only the
last position of each layer's output, so the full [batch, length, d] stack of every layer is
never materialised or copied, and the LM head never runs. Rows are length-bucketed and
left-padded so the last real token is at position -1 of every row.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from runner import metrics
from runner.batching import collate_left_padded, length_buckets
from runner.config import ExperimentConfig
from runner.models import AdaptedModel, pick_device, pick_dtype
from runner.plan import CONTROL, MULTITASK, PRETRAINED, Plan
from runner.store import atomic_dir, is_done, mark_done

log = logging.getLogger("layerwise.extract")


class LastTokenTaps:
    """Forward hooks on a Llama-style decoder that keep the last position of every layer.

    Layer 0 is the embedding output, layers 1..L-1 the decoder blocks' outputs, and layer L the
    final norm's output: exactly HF's `output_hidden_states`, where only the last entry is normed.
    """

    def __init__(self, decoder: torch.nn.Module):
        self.taps: list[torch.Tensor] = []
        modules = [decoder.embed_tokens, *list(decoder.layers)[:-1], decoder.norm]
        self.handles = [m.register_forward_hook(self._keep_last) for m in modules]
        self.num_layers = len(modules)

    def _keep_last(self, module, inputs, output) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        self.taps.append(hidden[:, -1, :].float())

    def collect(self) -> torch.Tensor:
        """[batch, layers, d] for the forward pass that just ran."""
        stacked, self.taps = torch.stack(self.taps, dim=1), []
        return stacked


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The bare decoder stack (no LM head) under a CausalLM, with or without a peft wrapper."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model


class HiddenStateEncoder:
    """Base model + adapters on one device; `encode` returns last-token states per layer."""

    def __init__(self, model_dir: str, device: str, dtype: torch.dtype, adapters: dict[str, str],
                 max_length: int, batch_size: int):
        self.models = AdaptedModel(model_dir, device, dtype, adapters)
        self.tokenizer = self.models.tokenizer
        self.device, self.max_length, self.batch_size = device, max_length, batch_size
        self.decoder = decoder_of(self.models.model)
        self.taps = LastTokenTaps(self.decoder)

    @torch.inference_mode()
    def encode(self, prompts: list[str], adapter: str | None) -> np.ndarray:
        """[n, layers, d] float32, in the order of `prompts`."""
        lengths = [len(self.tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]
        out = np.empty((len(prompts), self.taps.num_layers, self.decoder.config.hidden_size), np.float32)
        with self.models.use(adapter):
            for bucket in length_buckets(lengths, self.batch_size):
                batch = collate_left_padded(self.tokenizer, [prompts[i] for i in bucket], self.max_length)
                self.decoder(**{k: v.to(self.device) for k, v in batch.items()}, use_cache=False)
                out[bucket] = self.taps.collect().cpu().numpy()
        return out


class ActivationExtractor:
    """Ray Data actor: probe rows in, one row per (example, model, layer) out."""

    def __init__(self, experiment: dict, model_dir: str, adapters: dict[str, str]):
        exp = ExperimentConfig.model_validate(experiment)
        device = pick_device(exp.model)
        if device == "cpu":
            torch.set_num_threads(max(1, round(exp.resources.cpus_per_worker)))
        self.encoder = HiddenStateEncoder(model_dir, device, pick_dtype(exp.model, device, inference=True), adapters,
                                          exp.extraction.max_length, exp.extraction.batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        ids = batch.column("example_id").to_pylist()
        tasks = batch.column("task").to_pylist()
        prompts = batch.column("prompt").to_pylist()
        passes = [(PRETRAINED, None, list(range(len(ids)))), (MULTITASK, MULTITASK, list(range(len(ids))))]
        for task in dict.fromkeys(tasks):
            passes.append((CONTROL, f"{CONTROL}-{task}", [i for i, t in enumerate(tasks) if t == task]))
        parts = [self._rows(label, self.encoder.encode([prompts[i] for i in rows], adapter),
                            [ids[i] for i in rows], [tasks[i] for i in rows])
                 for label, adapter, rows in passes]
        table = pa.concat_tables(parts)
        metrics.record_rows("extract", len(ids), time.time() - started)
        return table

    @staticmethod
    def _rows(label: str, states: np.ndarray, ids: list[str], tasks: list[str]) -> pa.Table:
        n, layers, d = states.shape
        # Layer-major order keeps each (task, model, layer) slab contiguous for the readers.
        flat = np.ascontiguousarray(states.transpose(1, 0, 2)).reshape(-1)
        return pa.table({
            "example_id": pa.array(ids * layers, pa.string()),
            "task": pa.array(tasks * layers, pa.string()),
            "model": pa.array([label] * (n * layers), pa.string()),
            "layer": pa.array(np.repeat(np.arange(layers, dtype=np.int16), n)),
            # A plain fixed-size list, not Ray's tensor extension, so Polars can read it.
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), d),
        })


def run_extraction(plan: Plan, model_dir: str, probes) -> Path:
    """Write <out>/activations/<key>/*.parquet unless an identical extraction is already there."""
    import ray
    from ray.data import ActorPoolStrategy

    target = plan.activations_dir
    if is_done(target, plan.extract_key):
        log.info("extract: activations %s already complete, skipping", target.name)
        return target
    exp = plan.config
    adapters = {job.id: job.out_dir for job in plan.jobs}
    # Two model batches per Ray Data batch: room for length bucketing, and enough batches that
    # every actor stays busy to the end.
    rows_per_batch = exp.extraction.batch_size * 2
    on_gpu = exp.resources.gpus_per_worker > 0
    started = time.time()
    with atomic_dir(target) as tmp:
        dataset = ray.data.from_arrow(probes.sort(["task", "example_id"]).to_arrow())
        dataset.map_batches(
            ActivationExtractor,
            fn_constructor_kwargs={"experiment": exp.model_dump(mode="json"), "model_dir": model_dir,
                                   "adapters": adapters},
            batch_size=rows_per_batch, batch_format="pyarrow",
            compute=ActorPoolStrategy(size=exp.resources.extract_actors),
            num_cpus=exp.resources.cpus_per_worker, num_gpus=exp.resources.gpus_per_worker if on_gpu else 0,
        ).write_parquet(str(tmp))
    mark_done(target, plan.extract_key, seconds=round(time.time() - started, 2), examples=probes.height)
    return target
