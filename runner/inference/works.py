"""What one pass of the inference actor computes ("works"): rows of one model in, an Arrow table out.

Adding one is a class here with `name` and `__call__`, and an entry in `WORKS`."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from runner.config import ExperimentConfig
from runner.inference.encoder import HiddenStateEncoder
from runner.inference.scoring import predict
from runner.models import AdaptedModel


class ExtractWork:
    """Inference-actor work: one row per (example, model, layer) with the last-token vector."""

    name = "extract"

    def __init__(self, models: AdaptedModel, exp: ExperimentConfig):
        self.encoder = HiddenStateEncoder(models, exp.extraction.max_length, exp.extraction.batch_size)

    def __call__(self, label: str, rows: pa.Table) -> pa.Table:
        states = self.encoder.encode_current(rows.column("prompt").to_pylist())
        ids, tasks = rows.column("example_id").to_pylist(), rows.column("task").to_pylist()
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


class ScoreWork:
    """Inference-actor work: one prediction per (row, model)."""

    name = "evaluate"

    def __init__(self, models: AdaptedModel, exp: ExperimentConfig):
        self.models = models
        self.options = {"max_new_tokens": exp.evaluation.max_new_tokens, "batch_size": exp.evaluation.batch_size,
                        "max_length": exp.evaluation.max_length or exp.training.max_length}

    def __call__(self, label: str, rows: pa.Table) -> pa.Table:
        records = rows.to_pylist()
        preds = predict(self.models.model, self.models.tokenizer, records, **self.options)
        return pa.table({"example_id": pa.array([r["example_id"] for r in records], pa.string()),
                         "model": pa.array([label] * len(records), pa.string()),
                         "prediction": pa.array(preds, pa.string())})


WORKS: dict[str, type] = {work.name: work for work in (ExtractWork, ScoreWork)}
