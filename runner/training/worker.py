"""The Ray Train worker loop: `runner.training.trainer.Trainer` adapted to Ray Train.

One function serves the multi-task model E (N workers) and every control C_t (one worker
each), on CPU (fp32, gloo) and GPU (bf16, NCCL) alike. Ray's part is only this: the worker's
rank, world and device; the job's data from the object store; a DeepSpeed checkpoint reported
with each evaluation so that Ray Train can restart a failed worker group from the last one; and
metrics. The base model and tokenizer are loaded once per worker and reused by every model of
the run (a fresh adapter, optimizer and engine each).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ray
import ray.train
import torch

from runner.artifacts.store import is_done
from runner.config import use_tasks
from runner.models import pick_device, pick_dtype
from runner.ops import metrics
from runner.plan import TrainJob, TrainRun
from runner.training.trainer import Base, Trainer, encode_payload, publish


def train_loop_per_worker(config: dict) -> None:
    """Train every unfinished model of one run, in order, on this worker group.

    `config` (Ray Train's train_loop_config): the `run` (runner.plan.TrainRun, its jobs as they were
    planned), its lane's `queue` or None, and the jobs' `data_refs` by key."""
    run: TrainRun = config["run"]
    exp = run.config
    use_tasks(exp)
    device = pick_device(exp.model)
    # DeepSpeed picks its accelerator at import: make it follow the configured device.
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if device == "cuda" else "cpu")
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if device == "cuda":
        torch.cuda.set_device(ray.train.torch.get_device())
    elif exp.resources.cpus_per_worker >= 1:
        torch.set_num_threads(int(exp.resources.cpus_per_worker))
    ctx = ray.train.get_context()
    # Say what runs where: one line per worker, in the driver's log and the dashboard's.
    count = f"models from a queue of {len(run.queued)}" if run.lane else f"{len(run.jobs)} model(s)"
    print(f"[{run.id}] rank {ctx.get_world_rank()}/{ctx.get_world_size()} pid {os.getpid()} "
          f"on {socket.gethostname()}, {device}, {count}", flush=True)
    checkpoint = ray.train.get_checkpoint()
    base = None
    for job in _jobs(run, config["queue"]):
        if is_done(Path(job.out_dir), job.key):
            continue  # finished before a restart of this run
        if base is None:  # loaded once, on the first model this worker trains
            started = time.time()
            base = Base.load(run.model_dir, device, pick_dtype(exp.model, device))
            print(f"[{job.id}] base model loaded in {time.time() - started:.1f}s", flush=True)
        _train_one(job, config["data_refs"][job.key], base, checkpoint)
        checkpoint = None  # a restored checkpoint belongs to the first unfinished model only


def _jobs(run: TrainRun, queue) -> Iterator[TrainJob]:
    """The run's models: its fixed list, or for a lane (resources.job_queue) whatever the queue hands
    out next. Rank 0 asks and every rank trains what it got."""
    if not run.lane:
        yield from run.jobs
        return
    finished = None
    while True:
        handed = [ray.get(queue.next.remote(run.group, run.id, finished))
                  if ray.train.get_context().get_world_rank() == 0 else None]
        if ray.train.get_context().get_world_size() > 1:
            torch.distributed.broadcast_object_list(handed, src=0)
        job = handed[0]
        if job is None:
            return
        yield job
        finished = job.id


def _train_one(job: TrainJob, data_ref, base: Base, checkpoint) -> None:
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    started = time.time()  # the job's wall time (training.parquet `seconds`) runs from here to its published adapter
    train, val, tasks = encode_payload(base.tokenizer, ray.get(data_ref), job.config.training.max_length)
    trainer = Trainer(job, base, train, val, tasks, rank=rank, world=world, started=started)
    if rank == 0:
        print(f"[{job.id}] seed {trainer.seed}, {len(train)} examples, <= {trainer.max_steps} steps: "
              f"{trainer.memory.describe()}", flush=True)
    if checkpoint:
        with checkpoint.as_directory() as ckpt_dir:
            if trainer.load_checkpoint(Path(ckpt_dir)):
                print(f"[{job.id}] resumed at step {trainer.state.step} from checkpoint", flush=True)

    def report(trainer: Trainer, point: dict) -> None:
        metrics.record_train_point(job.id, point)
        summary = {**point, "job": job.id}
        if trainer.finished:
            ray.train.report(summary)  # the adapter is published next: nothing left to resume
            return
        with tempfile.TemporaryDirectory() as ckpt_dir:
            trainer.save_checkpoint(Path(ckpt_dir))
            ray.train.report(summary, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir))

    trainer.run(on_eval=report)
    if rank == 0:
        info = publish(trainer, Path(job.out_dir))
        metrics.record_job_done(job.role)  # the dashboard's "models finished"
        print(f"[{job.id}] {info['stopped']} after {info['steps']} steps, best validation loss "
              f"{info['best_val_loss']:.4f} (pretrained {info['pretrained_val_loss']:.4f}); {info['seconds']:.0f}s, "
              f"{info['step_seconds']:.0f}s in steps, {info['eval_seconds']:.0f}s validating", flush=True)
    if world > 1:
        torch.distributed.barrier()  # no rank starts the next model before the adapter is published
    trainer.close()
