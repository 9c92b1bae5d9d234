"""One typed training job end to end: the plan's TrainJob carries its role's policy and its config,
travels to the workers pickled as it is, and nothing on the training side reads a job by string key."""

from __future__ import annotations

import ast
import pickle
from dataclasses import replace
from pathlib import Path

from analysis.roles import CONTROL, MULTITASK
from runner.config import load_config, preset_path
from runner.plan import TaskRef, TrainJob, TrainRun, group_runs, make_plan, role_policy

ROOT = Path(__file__).resolve().parent.parent
REFS = [TaskRef("rte", "nli"), TaskRef("sst2", "sentiment")]


def tiny(**overrides):
    return load_config(preset_path("tiny"), overrides)


def test_each_role_trains_by_its_own_policy():
    config = tiny(**{"training.eval_every": 5, "training.multitask_eval_every": 7, "training.control_min_steps": 2,
                     "training.control_batch_size": 2})
    e, control = role_policy(config, MULTITASK), role_policy(config, CONTROL)
    t, res = config.training, config.resources
    assert (e.max_steps, e.min_steps, e.batch_size, e.eval_every, e.workers) == \
        (t.max_steps, 0, t.batch_size, 7, res.multitask_workers)
    assert (control.max_steps, control.min_steps, control.batch_size, control.eval_every, control.workers) == \
        (t.control_max_steps, 2, 2, 5, res.control_workers)
    # Without its own cadence E validates as often as a control.
    assert role_policy(tiny(**{"training.eval_every": 5}), MULTITASK).eval_every == 5


def test_the_plan_builds_every_job_from_its_role_policy(tmp_path):
    config = tiny(**{"training.multitask_eval_every": 4, "baseline.seeds": [1, 2]})
    plan = make_plan(config, tmp_path, REFS, pool_size=512)
    for job in plan.jobs:
        policy = role_policy(config, job.role)
        assert (job.max_steps, job.batch_size, job.eval_every, job.workers) == \
            (policy.max_steps, policy.batch_size, policy.eval_every, policy.workers)
        assert job.config is config  # what the trainer follows: method, LoRA, optimiser, precision
    e = plan.job(MULTITASK)
    assert e.eval_every == 4 and e.min_steps > 0  # E's floor is its exposure guarantee
    assert {j.seed for j in plan.jobs if j.role == CONTROL} == {0, 1, 2}


def test_a_job_travels_pickled_as_it_is(tmp_path):
    config = tiny(**{"lora.r": 16})
    plan = make_plan(config, tmp_path, REFS, pool_size=512)
    runs = group_runs(list(plan.jobs), controls_per_run=2)
    shipped = pickle.loads(pickle.dumps(runs))
    assert shipped == runs
    assert all(a.config == b.config for run, again in zip(runs, shipped) for a, b in zip(run.jobs, again.jobs))
    assert shipped[0].jobs[0].config.lora.r == 16
    assert [job.key for run in shipped for job in run.jobs] == [job.key for job in plan.jobs]


def test_a_lane_names_the_jobs_of_its_queue(tmp_path):
    plan = make_plan(tiny(), tmp_path, REFS, pool_size=512)
    controls = tuple(j for j in plan.jobs if j.role == CONTROL)
    lane = TrainRun(id="lane-0", jobs=(), workers=1, cpus_per_worker=1.0, gpus_per_worker=0.0, queued=controls,
                    group="-")
    fixed = TrainRun(id="multitask", jobs=(plan.job(MULTITASK),), workers=2, cpus_per_worker=1.0, gpus_per_worker=0.0)
    assert lane.lane and not fixed.lane
    assert lane.keys == [j.key for j in controls] and fixed.keys == [plan.job(MULTITASK).key]
    assert lane.config is plan.config and fixed.config is plan.config


def test_the_config_is_not_part_of_a_jobs_identity(tmp_path):
    job = make_plan(tiny(), tmp_path, REFS, pool_size=512).job(MULTITASK)
    assert replace(job, config=tiny(**{"training.lr": 0.5})) == job
    assert hash(job) == hash(replace(job, config=tiny(**{"training.lr": 0.5})))


def test_a_standalone_job_follows_its_roles_policy():
    config = tiny(**{"training.multitask_eval_every": 9})
    e = TrainJob.standalone(config, MULTITASK, ["a", "b"], max_steps=3)
    assert (e.id, e.role, e.tasks, e.seed, e.eval_every, e.max_steps) == (MULTITASK, MULTITASK, ("a", "b"), 0, 9, 3)
    control = TrainJob.standalone(config, CONTROL, ["a"])
    assert (control.id, control.eval_every, control.batch_size) == ("control-a", config.training.eval_every,
                                                                    config.training.control_batch)


def _string_key_reads(path: Path) -> list[str]:
    """`job[...]`/`job.get(...)` with a string, or a `["jobs"]`-style read, in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            target = ast.unparse(node.value)
            if target.split(".")[-1] in ("job", "jobs", "run") or node.slice.value in ("jobs", "queued", "job"):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and ast.unparse(node.func.value).split(".")[-1] in ("job", "run"):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_nothing_on_the_training_side_reads_a_job_by_string_key():
    modules = sorted((ROOT / "runner" / "training").glob("*.py")) + sorted((ROOT / "runner" / "stages").glob("*.py"))
    assert [hit for path in modules for hit in _string_key_reads(path)] == []
    memory = ast.parse((ROOT / "runner" / "training" / "memory.py").read_text())
    assert "_get" not in {node.name for node in ast.walk(memory) if isinstance(node, ast.FunctionDef)}
