"""The Ray-free trainer on the tiny Llama with real DeepSpeed ZeRO-2 on CPU (a gloo group of one):
the loss, plateau early stopping, resumption, seeds, gradient accumulation, publishing, batching."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.roles import CONTROL, MULTITASK
from runner.config import load_config, preset_path
from runner.models import resolve_model
from runner.plan import TrainJob
from runner.training.batching import IGNORE, BatchSchedule, collate_training, length_buckets, padding_fraction
from runner.training.trainer import Base, Trainer, ensure_process_group, publish, target_loss
from tests.conftest import ROOT

POISONED = "import sys; sys.modules['ray'] = None; sys.modules['polars'] = None; "


def tiny(**overrides):
    return load_config(preset_path("tiny"), overrides)


@pytest.fixture(scope="module")
def base() -> Base:
    exp = tiny()
    ensure_process_group("cpu")
    return Base.load(resolve_model(exp.model), "cpu", torch.float32)


def examples(n: int = 64, lo: int = 8, hi: int = 40, seed: int = 0, vocab: int = 500):
    """Random sequences whose last quarter is the target."""
    rng = np.random.default_rng(seed)
    out = []
    for length in rng.integers(lo, hi + 1, size=n).tolist():
        ids = rng.integers(3, vocab, size=length).tolist()
        cut = length - max(1, length // 4)
        out.append((ids, [IGNORE] * cut + ids[cut:]))
    return out


TRAIN, VAL = examples(64), examples(12, seed=1)
TASKS = ["a" if i % 3 else "b" for i in range(len(TRAIN))]


def job(exp=None, role: str = CONTROL, tasks=("a",), **overrides) -> TrainJob:
    """A job of `exp` (default: the tiny preset) outside a plan: its role's policy unless overridden."""
    fields = {"max_steps": 12, "batch_size": 4, "workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 0, "key": "k",
              "seed": 0, "min_steps": 0}
    return TrainJob.standalone(exp or tiny(), role, tasks, **(fields | overrides))


def make(base, exp=None, train=TRAIN, **job_overrides) -> Trainer:
    return Trainer(job(exp, **job_overrides), base, train, VAL, TASKS[:len(train)])


def lora_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.named_parameters() if "lora_" in k}


def test_trainer_imports_without_ray_or_polars():
    result = subprocess.run([sys.executable, "-c", POISONED + "import runner.training.trainer, runner.training.memory"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_loss_at_target_positions_equals_hf_loss(base):
    batch = collate_training(TRAIN[:6], base.tokenizer.pad_token_id)
    model = base.model.eval()
    with torch.no_grad():
        ours, hf = target_loss(model, **batch), model(**batch).loss
    assert abs(float(ours) - float(hf)) <= 1e-6
    trainer = make(base, tiny(**{"training.lr": 3e-2}))
    for _ in range(3):
        trainer.train_step()  # non-zero LoRA B: the adapter is in the path
    trainer.model.eval()
    with torch.no_grad():
        ours, hf = target_loss(trainer.model, **batch), trainer.model(**batch).loss
        summed = target_loss(trainer.model, **batch, num_items=1.0)
    targets = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert abs(float(ours) - float(hf)) <= 1e-6
    assert float(summed) == pytest.approx(float(ours) * targets, rel=1e-6)
    trainer.close()


def test_deepspeed_on_cpu_builds_no_shared_memory_all_reduce(base):
    """The op only serves DeepSpeed inference and costs about a minute of C++ per fresh machine."""
    import deepspeed.comm.comm as ds_comm

    make(base, max_steps=1)
    assert ds_comm.cdb is not None and ds_comm.cdb.shm_comm_op is None
    extensions = os.environ.get("TORCH_EXTENSIONS_DIR")
    if extensions:
        assert not list(Path(extensions).glob("deepspeed_shm_comm*"))


def test_a_plateau_stops_converged(base):
    exp = tiny(**{"training.lr": 1e-9, "training.eval_every": 2, "training.patience": 2, "training.min_delta": 1e-3})
    trainer = make(base, exp, max_steps=40)
    state = trainer.run()
    # The pretrained model's evaluation (step 0) is the first reference; two evaluations without progress.
    assert (state.stopped, state.step, [p["step"] for p in state.curve]) == ("plateau", 4, [0, 2, 4])
    info = trainer.summary()
    assert info["converged"] is True and info["stopped"] == "plateau" and info["steps"] == 4
    trainer.close()


def test_validation_starts_from_the_pretrained_loss_and_records_the_rule(base):
    """Step 0 is the pretrained model's loss on the validation set (a fresh adapter changes nothing);
    per-example losses add up to the batched mean; every point carries its rate and threshold."""
    batch = collate_training(VAL, base.tokenizer.pad_token_id)
    with torch.no_grad():
        pretrained = float(target_loss(base.model.eval(), **batch))
    exp = tiny(**{"training.lr": 3e-2, "training.eval_every": 2, "training.patience": 2, "training.max_steps": 8})
    trainer = make(base, exp, max_steps=8)
    state = trainer.run()
    first = state.curve[0]
    assert first["step"] == 0 and first["val_loss"] == pytest.approx(pretrained, abs=1e-5)
    assert state.pretrained_val == pytest.approx(pretrained, abs=1e-5)
    later = state.curve[1:]
    assert all(p["lr"] == pytest.approx(3e-2) for p in later)
    # auto: the threshold is twice the standard error of the change since the reference.
    assert all(p["threshold"] > 0 and np.isfinite(p["threshold"]) for p in later)
    assert later[0]["improvement"] == pytest.approx(pretrained - later[0]["val_loss"], abs=1e-5)
    info = trainer.summary()
    assert info["pretrained_val_loss"] == pytest.approx(pretrained, abs=1e-5) and info["val_gain_se"] > 0
    assert info["step_seconds"] > 0 and info["eval_seconds"] > 0 and info["stop_lr"] == pytest.approx(3e-2)
    trainer.close()


def test_ratio_se_matches_a_bootstrap():
    from runner.training.trainer import ratio_se

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 6, size=400).astype(float)
    losses = tokens * rng.gamma(2.0, 0.5, size=400)
    idx = rng.integers(0, 400, size=(4000, 400))
    boot = (losses[idx].sum(1) / tokens[idx].sum(1)).std()
    assert ratio_se(losses, tokens) == pytest.approx(boot, rel=0.08)


def test_no_plateau_while_the_rate_decays(base):
    """A decaying rate flattens any curve: below half its peak a flat stretch is the schedule's, so the
    job runs to its cap ("cap", not converged) where a constant rate stops on the plateau."""
    flat = {"training.lr": 1e-9, "training.eval_every": 2, "training.patience": 3, "training.min_delta": 1e-3}
    constant = make(base, tiny(**flat, **{"training.lr_schedule": "constant"}), max_steps=8)
    assert (constant.run().stopped, constant.state.step) == ("plateau", 6)
    constant.close()
    linear = make(base, tiny(**flat, **{"training.lr_schedule": "linear"}), max_steps=8)
    state = linear.run()
    assert (state.stopped, state.step) == ("cap", 8)
    assert state.curve[-2]["lr"] < 0.5e-9  # at step 6 the rate was already below half its peak
    linear.close()


def test_min_steps_holds_off_the_plateau(base):
    exp = tiny(**{"training.lr": 1e-9, "training.eval_every": 2, "training.patience": 1, "training.min_delta": 1e-3})
    trainer = make(base, exp, max_steps=40, min_steps=11)
    state = trainer.run()
    assert (state.stopped, state.step) == ("plateau", 12)
    trainer.close()


def test_exposure_holds_off_the_plateau_until_every_task_was_seen_enough(base):
    exp = tiny(**{"training.lr": 1e-9, "training.eval_every": 2, "training.patience": 1, "training.min_delta": 1e-3})
    need = {"a": 30, "b": 15}  # task b is a third of the examples: it sets the pace
    trainer = make(base, exp, max_steps=40, role=MULTITASK, tasks=["a", "b"], min_examples=tuple(need.items()))
    state = trainer.run()
    seen = trainer.summary()["examples_by_task"]
    assert state.stopped == "plateau" and all(seen[t] >= n for t, n in need.items())
    # Two steps earlier (one evaluation before), some task was still short: the stop was held off.
    earlier = trainer.schedule.stats(state.step - 2, trainer.memory.micro_batch, TASKS)["examples_by_task"]
    assert any(earlier.get(t, 0) < n for t, n in need.items())
    trainer.close()


def test_learning_rate_warms_up_then_decays_to_zero_at_the_cap(base):
    exp = tiny(**{"training.lr": 1e-3, "training.warmup_steps": 2, "training.lr_schedule": "linear"})
    trainer = make(base, exp, max_steps=10)
    rates = [trainer.learning_rate(step) for step in range(10)]
    assert rates[0] == pytest.approx(0.5e-3 * 1.0) and rates[1] == pytest.approx(1e-3 * 0.9)
    assert all(a > b for a, b in zip(rates[1:], rates[2:])) and rates[-1] == pytest.approx(1e-4)
    trainer.train_step()
    assert trainer.engine.optimizer.param_groups[0]["lr"] == pytest.approx(rates[0])
    trainer.close()
    cosine = make(base, tiny(**{"training.lr_schedule": "cosine"}), max_steps=10)
    assert cosine.learning_rate(5) == pytest.approx(cosine.exp.training.lr * 0.5)
    cosine.close()


def test_the_cap_is_not_convergence(base):
    exp = tiny(**{"training.eval_every": 2, "training.patience": 5})
    trainer = make(base, exp, max_steps=5)
    state = trainer.run()
    assert (state.stopped, state.step) == ("cap", 5)
    assert [p["step"] for p in state.curve] == [0, 2, 4, 5]  # the last step is always evaluated
    info = trainer.summary()
    assert info["converged"] is False and info["stopped"] == "cap"
    trainer.close()


def test_a_resumed_job_is_bit_identical(base, tmp_path):
    exp = tiny(**{"lora.dropout": 0.1, "training.lr": 1e-2, "training.eval_every": 3, "training.patience": 5,
                  "training.length_window": 4})
    straight = make(base, exp, max_steps=6)
    straight.run()
    expected, curve = lora_state(straight), straight.state.curve
    straight.close()

    first = make(base, exp, max_steps=6)
    first.validate_pretrained()
    loss = first.train_step()
    while not first.due:
        loss = first.train_step()
    first.evaluate(loss)
    first.save_checkpoint(tmp_path)
    trainable = {name for name, p in first.engine.module.named_parameters() if p.requires_grad}
    first.close()
    # The checkpoint holds the adapter, not the frozen model (the tiny Llama ties its LM head).
    saved = torch.load(next(tmp_path.rglob("*model_states.pt")), weights_only=False)["module"]
    assert set(saved) == trainable and all("lora_" in name for name in saved)
    resumed = make(base, exp, max_steps=6)
    assert resumed.load_checkpoint(tmp_path) and resumed.state.step == 3
    resumed.run()
    got = lora_state(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [p["val_loss"] for p in resumed.state.curve] == [p["val_loss"] for p in curve]
    assert not make_other_job_resume(base, exp, tmp_path)
    resumed.close()


def make_other_job_resume(base, exp, folder) -> bool:
    other = Trainer(job(exp, id="control-b"), base, TRAIN, VAL)
    try:
        return other.load_checkpoint(folder)
    finally:
        other.close()


def test_the_seed_changes_init_order_and_dropout(base):
    exp = tiny(**{"lora.dropout": 0.2})
    a, b = make(base, exp, seed=0), None
    init_a = lora_state(a)
    order_a = [a.schedule.indices(s) for s in range(3)]
    a.close()
    again = make(base, exp, seed=0)
    assert all(torch.equal(init_a[k], v) for k, v in lora_state(again).items())
    again.close()
    b = make(base, exp, seed=1)
    init_b = lora_state(b)
    assert any(not torch.equal(init_a[k], init_b[k]) for k in init_a if "lora_A" in k)
    assert [b.schedule.indices(s) for s in range(3)] != order_a
    b.close()
    from runner.training.trainer import _step_seed
    assert _step_seed(0, 5, 0, 0) != _step_seed(1, 5, 0, 0) != _step_seed(1, 6, 0, 0)


def test_accumulation_and_checkpointing_do_not_change_the_update(base):
    def one_step(exp) -> dict:
        trainer = make(base, exp, seed=3)
        trainer.train_step()
        state = lora_state(trainer)
        trainer.close()
        return state

    whole = one_step(tiny(**{"training.lr": 1e-2}))
    accumulated = one_step(tiny(**{"training.lr": 1e-2, "training.micro_batch_size": 1}))
    checkpointed = one_step(tiny(**{"training.lr": 1e-2, "training.gradient_checkpointing": "on"}))
    for k in whole:
        assert torch.allclose(whole[k], accumulated[k], atol=1e-6), k
        assert torch.allclose(whole[k], checkpointed[k], atol=1e-6), k


def test_publish_writes_the_adapter_curve_and_marker(base, tmp_path):
    from peft import PeftModel

    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    trainer = make(base, tiny(**{"training.eval_every": 2}), max_steps=4, key="key-1", seed=7)
    trainer.run()
    info = publish(trainer, tmp_path / "model")
    trainer.close()
    out = tmp_path / "model"
    assert {"adapter_config.json", "adapter_model.safetensors", "curve.parquet", "training.json",
            "_SUCCESS.json"} <= {p.name for p in out.iterdir()}
    marker = json.loads((out / "_SUCCESS.json").read_text())
    assert marker["key"] == "key-1"
    for key in ("steps", "examples_seen", "examples_by_task", "tokens_seen", "best_val_loss", "converged", "stopped",
                "seed", "lora_r", "padding_fraction", "seconds", "step_seconds", "eval_seconds", "pretrained_val_loss",
                "val_gain_se", "started_at", "finished_at"):
        assert key in marker, key
    assert marker["steps"] == 4 and marker["examples_seen"] == 16 and marker["seed"] == 7
    assert sum(marker["examples_by_task"].values()) == 16
    schedule = BatchSchedule([len(ids) for ids, _ in TRAIN], 4, 7, tiny().training.length_window)
    seen = [i for s in range(4) for i in schedule.indices(s)]
    assert marker["examples_by_task"] == {t: n for t in ("a", "b") if (n := sum(TASKS[i] == t for i in seen))}
    assert marker["tokens_seen"] == sum(len(TRAIN[i][0]) for i in seen)
    assert info == {k: marker[k] for k in info}
    # The shared base is left as it was: no LoRA layers, the same weights.
    assert not any("lora" in name for name, _ in base.model.named_modules())
    assert all(torch.equal(before[k], v) for k, v in base.model.state_dict().items())
    # Any peft user can load the adapter.
    loaded = PeftModel.from_pretrained(base.model, out)
    assert loaded.peft_config["default"].r == tiny().lora.r
    base.model = loaded.unload()


def test_batches_are_a_pure_function_of_the_step_with_the_length_window():
    lengths = np.random.default_rng(0).integers(64, 1025, size=3000)
    forward = BatchSchedule(lengths, 16, seed=5, window=8)
    backward = BatchSchedule(lengths, 16, seed=5, window=8)
    steps = range(0, 400, 7)
    assert [forward.indices(s) for s in steps] == [backward.indices(s) for s in reversed(steps)][::-1]
    batch = forward.indices(42)
    assert len(batch) == 16 and list(lengths[batch]) == sorted(lengths[batch])
    # The ranks' micro-batches are consecutive slices that partition the batch.
    parts = [forward.micro_batches(42, rank, 2, 4) for rank in range(2)]
    assert sorted(i for part in parts for micro in part for i in micro) == sorted(batch)
    assert all(len(micro) == 4 for part in parts for micro in part)
    # Every example is seen once per epoch, windows and all.
    epoch = [i for s in range(len(lengths) // 16) for i in forward.indices(s)]
    assert len(set(epoch)) > 0.99 * len(epoch)


def test_padding_stays_under_ten_percent_on_mixed_lengths():
    lengths = np.random.default_rng(1).integers(64, 1025, size=4000)
    grouped = BatchSchedule(lengths, 16, seed=0, window=8).stats(200, micro=16)["padding_fraction"]
    ungrouped = BatchSchedule(lengths, 16, seed=0, window=1).stats(200, micro=16)["padding_fraction"]
    assert grouped <= 0.10 < ungrouped
    evaluation = padding_fraction(lengths.tolist(), length_buckets(lengths.tolist(), 16))
    assert evaluation <= 0.10


def test_benchmark_runs_on_cpu_without_ray_or_polars():
    code = (POISONED + "import runpy; sys.argv = ['train_step.py', '--steps', '1', '--warmup', '0', "
            "'--max-length', '48', '--batch', '8']; runpy.run_path('benchmarks/train_step.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith(("full ", "mixed "))}
    assert set(lines) == {"full", "mixed"}, result.stdout[-3000:]
    for line in lines.values():
        for field in ("pad-fraction: ", "tokens-per-s: ", "real-tokens-per-s: ", "mfu: ", "peak-memory-gib: n/a",
                      "estimated-memory-gib: "):
            assert field in line, (field, line)
    assert "pad-fraction: 0.000" in lines["full"]
    assert "measured  94.7 GiB" in result.stdout  # the calibration table is printed beside the estimate
