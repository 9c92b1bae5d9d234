"""The stage table is the one place a stage is declared: its cache key's inputs and its outputs. The plan,
the CLI and the sweep loop over it, so a planted stage is planned, offered, described and run without
touching them; and the keys are the ones earlier runs' caches were written under."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import polars as pl
import pytest

from analysis.roles import CONTROL
from runner.config import AnalysisConfig, load_config, preset_path, stable_hash
from runner.data import select_tasks
from runner.plan import make_plan
from runner.stages import STAGES, Stage, activations_dir, progress, stage_keys, summaries

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = {"model.experimental": [{"name": "HuggingFaceTB/SmolLM2-135M-Instruct", "label": "smol-it"}]}


def _plan(tmp_path: Path, overrides: dict | None = None):
    config = load_config(preset_path("tiny"), overrides)
    return make_plan(config, tmp_path / "out", select_tasks(config))


def _string_literals(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_plan_the_cli_and_the_sweep_name_no_stage():
    for module in ("cli", "plan", "sweep"):
        named = _string_literals(ROOT / "runner" / f"{module}.py") & set(STAGES)
        assert not named, f"runner/{module}.py names the stages {sorted(named)}; read them off runner.stages.STAGES"


@pytest.mark.parametrize("overrides", [None, PUBLISHED, {**PUBLISHED, "training.multitask": False},
                                       {"analysis.calibrate": {"permutations": 20}, "evaluation.generation_size": 7}])
def test_keys_are_the_ones_earlier_caches_were_written_under(tmp_path, overrides):
    """The formulas the plan used before the stages declared their keys, spelled out: a changed value
    would orphan every finished extraction, analysis and evaluation."""
    plan = _plan(tmp_path, overrides)
    config, jobs = plan.config, [job.key for job in plan.jobs]
    externals = config.model_dump(mode="json")["model"]["experimental"]
    published = [externals] if externals else []
    extract = stable_hash([jobs, config.digest("extraction")] + published)
    scoring = config.evaluation.model_dump(mode="json", exclude={"enabled", "harness_tasks"})
    assert dict(plan.keys) == {
        "extract": extract,
        "analyze": stable_hash([extract, config.digest("analysis"), config.model.checkpoint]),
        "evaluate": stable_hash([jobs, scoring, config.training.max_length] + published),
    }
    assert activations_dir(plan) == plan.out / "activations" / extract


def test_keys_are_computed_without_ray_torch_or_a_stage_module():
    code = ("import sys; from pathlib import Path; from runner.config import load_config, preset_path; "
            "from runner.data import select_tasks; from runner.plan import make_plan; "
            "c = load_config(preset_path('tiny')); p = make_plan(c, Path('/nonexistent/out'), select_tasks(c)); "
            "assert p.keys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch') "
            "or m.startswith('runner.stages.')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_every_stage_declares_its_outputs_and_reads_only_earlier_stages(tmp_path):
    plan = _plan(tmp_path, PUBLISHED)
    names, claimed = list(STAGES), {}
    for i, stage in enumerate(STAGES.values()):
        assert set(stage.needs) <= set(names[:i]), stage.name
        outputs = stage.outputs(plan)
        assert outputs, f"{stage.name} declares no outputs"
        for path in outputs:
            assert path.is_relative_to(plan.out) and path not in claimed, (stage.name, path, claimed.get(path))
            claimed[path] = stage.name
        assert (stage.name in plan.keys) == (stage.key is not None)


def _planted(calls: list) -> ModuleType:
    module = ModuleType("planted")
    module.run = lambda exp: calls.append(("run", exp.plan.key("planted")))
    module.current = lambda exp: False
    module.describe = lambda exp: [f"planted: [todo] key {exp.plan.key('planted')}"]
    module.summary = lambda exp: ["planted: its closing line"]
    module.progress = lambda exps: f"{len(exps)} planted things"
    return module


def test_a_planted_stage_is_planned_offered_described_and_run(tmp_path, monkeypatch, capsys):
    """One record plus one module: nothing in the plan, the CLI or the runner changes."""
    from runner.cli import build_parser
    from runner.dryrun import print_plan
    from runner.experiment import prepare, run_stages

    calls: list = []
    module = _planted(calls)
    last = list(STAGES)[-1]
    monkeypatch.setitem(STAGES, "planted", Stage(
        "planted", "a stage planted by a test", needs=(last,), module=lambda: module, ray=False,
        key=lambda plan, keys: [sorted(keys.items()), plan.config.training.seed],
        outputs=lambda plan: (plan.out / "planted.parquet",)))

    exp = prepare(load_config(preset_path("tiny")), tmp_path / "out", build_data=False)
    keys = {name: key for name, key in exp.plan.keys.items() if name != "planted"}
    assert exp.plan.key("planted") == stable_hash([sorted(keys.items()), exp.config.training.seed])
    assert stage_keys(exp.plan) == dict(exp.plan.keys)

    args = build_parser().parse_args(["planted", "--config", "tiny", "--dry-run"])
    assert args.command == "planted"
    print_plan(exp, ("planted",))
    assert f"planted: [todo] key {exp.plan.key('planted')}" in capsys.readouterr().out
    run_stages(exp, ("planted",))
    assert calls == [("run", exp.plan.key("planted"))]
    assert summaries(exp, ["planted"]) == ["planted: its closing line"]
    assert progress([exp], "planted", []) == ["1 planted things"]


def _write_activations(folder: Path, task: str, ids: list[str], reps: np.ndarray) -> None:
    """One run's activations as the extract stage writes them: a row per (example, model, layer)."""
    layers, n, d = reps.shape
    folder.mkdir(parents=True)
    pl.DataFrame({
        "task": [task] * layers * n, "model": [CONTROL] * layers * n,
        "layer": np.repeat(np.arange(layers), n), "example_id": ids * layers,
        "vector": pl.Series(reps.reshape(layers * n, d).astype(np.float32), dtype=pl.Array(pl.Float32, d)),
    }).write_parquet(folder / "part-0.parquet")


@pytest.mark.parametrize("standardize", [False, True])
def test_the_sweeps_floor_is_the_runs_primary_measure_between_two_runs(tmp_path, standardize):
    """floor_between (the sweep's seed baseline) measures as the run's floor rows do: the primary measure
    with its parameters and standardising, on rows aligned by example id, the non-finite ones dropped."""
    from analysis.frames.suite import pairwise_frame
    from runner.stages.analyze import floor_between

    rng = np.random.default_rng(0)
    ids = [f"ex{i:02d}" for i in range(24)]
    a, b = rng.normal(size=(3, 24, 8)), rng.normal(size=(3, 24, 8))
    b[1, 5] = np.nan  # one example non-finite in one run: dropped from both
    _write_activations(tmp_path / "a", "rte", ids, a)
    _write_activations(tmp_path / "b", "rte", ids[::-1], b[:, ::-1])  # another row order, the same examples
    cfg = AnalysisConfig(standardize=standardize)
    floor = floor_between((str(tmp_path / "a"), str(tmp_path / "b")), "rte", "nli", cfg.model_dump(mode="json"))

    keep = [i for i in range(24) if i != 5]
    aligned = {"a": a[:, keep].astype(np.float32), "b": b[:, keep].astype(np.float32)}
    primary = [(cfg.primary_measure, dict(cfg.measure_params.get(cfg.primary_measure, {})))]
    expected = pairwise_frame("rte", "nli", aligned, [("a", "b")], primary, standardize=standardize)
    assert floor["layer"].to_list() == [0, 1, 2] and set(floor["measure"]) == {cfg.primary_measure}
    np.testing.assert_allclose(floor["value"].to_numpy(), expected.sort("layer")["value"].to_numpy(), rtol=0, atol=1e-12)
    assert floor["n"].to_list() == [23] * 3 and floor["n_dropped"].to_list() == [1] * 3


def test_the_closing_lines_come_from_the_finished_stages_the_last_product_first(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("<html></html>")
    pl.DataFrame({"measure": ["linear_cka"] * 3, "experimental": ["multitask"] * 3,
                  "verdict": ["holds", "holds", "contradicted"]}).write_parquet(out / "findings.parquet")
    exp = SimpleNamespace(plan=SimpleNamespace(out=out),
                          config=SimpleNamespace(analysis=SimpleNamespace(primary_measure="linear_cka")))
    findings = "findings (linear_cka): 1 contradicted, 2 holds"
    assert summaries(exp, list(STAGES)) == [f"report: {out / 'report.html'}", findings]
    assert summaries(exp, ["train", "extract", "analyze"]) == [findings]


def test_the_sweep_touches_no_private_attribute():
    private = [node.attr for node in ast.walk(ast.parse((ROOT / "runner" / "sweep.py").read_text()))
               if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert not private, f"runner/sweep.py reaches into {private}"
