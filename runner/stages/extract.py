"""The `extract` stage: last-token hidden states at every layer, streamed through Ray Data.

The shared inference actor (runner.inference.actor) runs the `ExtractWork` (runner.inference.works), whose encoder
(runner.inference.encoder) keeps only the last position of each layer through forward hooks and never
runs the LM head, on length-sorted, left-padded batches. Output: <out>/activations/<key>/*.parquet, one row per
(example, model, layer), the vector a plain fixed-size list that Polars reads.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from runner.artifacts.store import atomic_dir, is_current, mark_done, stamp
from runner.stages import EXTRACT, activations_dir

log = logging.getLogger("layerwise.extract")


def _inputs(exp) -> str:
    """The trained models' done markers, and the published models' files (a changed checkpoint re-extracts)."""
    trained = stamp(*(Path(job.out_dir) for job in exp.plan.jobs))
    if not exp.config.model.experimental:
        return trained
    from runner.models.external import fingerprint

    return f"{trained}+{fingerprint(exp.externals)}"


def current(exp) -> bool:
    return is_current(activations_dir(exp.plan), exp.plan.key(EXTRACT), _inputs(exp))


def describe(exp) -> list[str]:
    plan, cfg = exp.plan, exp.config
    state = "done" if current(exp) else "todo"
    models = ", ".join(plan.tuned)
    return [f"extract: [{state}] {len(plan.tasks)} x {cfg.extraction.probe_size} probes through pretrained, "
            f"{models} and each control on {cfg.resources.extract_actors} actor(s) -> {activations_dir(plan)}"]


def _watch(folder: Path, total: int, stop: threading.Event) -> None:
    """Progress from the files Ray Data has written so far (activations never pass the driver)."""
    from runner.ops.console import bar

    progress, seen = bar(total, "extract"), 0
    while not stop.wait(1.0):
        written = sum(1 for _ in folder.glob("*.parquet"))
        progress.update(max(0, min(written, total) - seen))
        seen = max(seen, min(written, total))
    progress.update(total - seen)
    progress.close()


def write_probe_texts(exp) -> Path:
    """<out>/probes.parquet: the rendered text of every probe and test example, so a reader can see
    what each model read (the prompts are a pure function of the config, so rewriting is cheap)."""
    from runner.artifacts.store import atomic_write_parquet
    from runner.data import rendered_texts

    path = exp.plan.out / "probes.parquet"
    atomic_write_parquet(rendered_texts(exp.splits, list(exp.plan.tasks)), path)
    return path


def run(exp) -> Path:
    """Write <out>/activations/<key>/*.parquet unless an identical extraction is already there."""
    from runner.data import probe_frame
    from runner.inference.actor import blocks_of, map_with_actors, model_passes

    plan, cfg = exp.plan, exp.config
    target = activations_dir(plan)
    write_probe_texts(exp)
    if current(exp):
        log.info("extract: activations %s already complete, skipping", target.name)
        return target
    probes = probe_frame(exp.splits, list(plan.tasks)).sort(["task", "example_id"]).to_arrow()
    # Two model batches per Ray Data batch: room for length bucketing.
    rows_per_batch = cfg.extraction.batch_size * 2
    blocks = len(blocks_of(probes, cfg.resources.extract_actors, rows_per_batch))
    started = time.time()
    with atomic_dir(target) as tmp:
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(tmp, blocks, stop), daemon=True)
        watcher.start()
        try:
            map_with_actors(plan, probes, "extract", exp.model_dir, model_passes(plan, externals=exp.externals),
                            rows_per_batch, externals=exp.externals).write_parquet(str(tmp))
        finally:
            stop.set()
            watcher.join()
    mark_done(target, plan.key(EXTRACT), inputs=_inputs(exp), seconds=round(time.time() - started, 2),
              examples=probes.num_rows)
    log.info("extract: %d probes in %.1fs -> %s", probes.num_rows, time.time() - started, target)
    return target
