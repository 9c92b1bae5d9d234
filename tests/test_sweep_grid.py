"""The sweep's grid over any config key, its replication table and the relative-depth figure (fast
parts; tests/test_sweep.py runs real sweeps)."""

from __future__ import annotations

import time

import polars as pl
import pytest

from analysis.claims.findings import CONTRADICTED, HOLDS, INCONCLUSIVE
from analysis.claims.replication import COLUMNS, REPLICATION_VERDICTS, replication_frame, replication_verdict
from runner.config import ConfigError, load_config, preset_path
from runner.sweep import Cell, cell_config, grid_cells, parse_grid, prepare_sweep, setting_labels, sweep_grid
from tests.conftest import TINY, layerwise

BASE = load_config(preset_path("tiny"))


def test_grid_values_are_yaml_scalars_and_cells_their_product():
    grid = parse_grid(["lora.r=4,8", "model.tiny.family=llama,qwen2", "training.lr=1e-4"])
    assert grid == {"lora.r": [4, 8], "model.tiny.family": ["llama", "qwen2"], "training.lr": ["1e-4"]}  # YAML 1.1
    cells = grid_cells(grid)
    assert len(cells) == 4 and len({c.label for c in cells}) == 4
    assert cells[0].label == "r4-family=llama-lr=1e-4"
    config = cell_config(BASE, cells[-1])
    assert (config.lora.r, config.model.tiny.family, config.training.lr) == (8, "qwen2", 1e-4)
    assert config.sweep.grid == {}  # a cell is one experiment


def test_shorthands_and_the_bare_sweep():
    assert sweep_grid(BASE) == {"training.seed": [0, 1]}  # nothing swept: two seeds, the seed baseline
    assert sweep_grid(BASE, ["model.tiny.family=llama,qwen2"]) == {"model.tiny.family": ["llama", "qwen2"]}
    assert sweep_grid(BASE, [], "2,4", "0") == {"lora.r": [2, 4], "training.seed": [0]}
    with pytest.raises(ConfigError, match="both sweep lora.r"):
        sweep_grid(BASE, ["lora.r=2,4"], "8")


def test_a_preset_can_carry_its_grid_and_flags_replace_its_keys():
    base = load_config(preset_path("tiny"), {"sweep.grid": {"lora.r": [2, 4], "training.seed": [0, 1]}})
    assert sweep_grid(base) == {"lora.r": [2, 4], "training.seed": [0, 1]}
    assert sweep_grid(base, ["lora.r=16"]) == {"lora.r": [16], "training.seed": [0, 1]}


@pytest.mark.parametrize(("flag", "expected"), [
    ("nosuch.key=1,2", "the config has no key 'nosuch'"),
    ("training.seeed=1,2", "did you mean 'training.seed'"),
    ("lora=1,2", "is a section"),
    ("lora.r=4,4", "listed twice"),
    ("lora.r", "expected KEY=V1,V2"),
    ("model.tiny.family=llama,bogus", "model.tiny.family: Input should be"),
])
def test_bad_grids_fail_in_one_line(flag, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")) as err:
        grid = sweep_grid(BASE, [flag])
        [cell_config(BASE, cell) for cell in grid_cells(grid)]
    assert "\n" not in str(err.value)


def test_a_bad_grid_fails_before_ray_starts(tmp_path):
    started = time.monotonic()
    result = layerwise("sweep", "--config", str(TINY), "--out", str(tmp_path / "out"), "--grid", "nosuch.key=1,2",
                       timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "nosuch" in lines[0], result.stderr
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_settings_are_read_off_the_built_configs(tmp_path):
    """Cells that differ only in their seed share a setting, however their values are written."""
    lr = BASE.training.lr
    cells = [Cell((("lora.r", 8), ("training.lr", lr), ("training.seed", 0))),
             Cell((("training.lr", lr), ("lora.r", 8), ("training.seed", 1))),  # another order
             Cell((("lora.r", 8), ("training.seed", 2))),                        # the default left out
             Cell((("lora.r", 4), ("training.seed", 0)))]
    settings = setting_labels(prepare_sweep(BASE, tmp_path, cells, build_data=False))
    assert len({settings[c] for c in cells[:3]}) == 1 and settings[cells[3]] != settings[cells[0]]
    assert Cell((("model.name", "org/m"), ("training.seed", 0))).label == "name=org_m-s0"  # folder-safe
    assert Cell(()).label == "base"  # never the sweep's own folder
    with pytest.raises(ConfigError, match="build the same experiment"):
        prepare_sweep(BASE, tmp_path, [Cell((("lora.r", BASE.lora.r),)), Cell((("training.seed", 0),))], build_data=False)


def test_optional_sections_and_fixed_keys():
    grid = sweep_grid(BASE, ["analysis.calibrate.permutations=20,40"])
    configs = [cell_config(BASE, cell) for cell in grid_cells(grid)]
    assert [c.analysis.calibrate.permutations for c in configs] == [20, 40]  # an off section switched on
    with pytest.raises(ConfigError, match="task files"):
        sweep_grid(BASE, ["tasks.include=a,b"])


@pytest.mark.parametrize(("holds", "contradicted", "expected"), [
    (2, 0, "replicates"), (3, 0, "replicates"), (1, 0, "inconclusive"), (0, 0, "inconclusive"),
    (0, 1, "fails"), (0, 2, "fails"), (1, 1, "mixed"), (2, 1, "mixed"),
])
def test_replication_rules(holds, contradicted, expected):
    assert replication_verdict(holds, contradicted) == expected


def _findings(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"claim": [r[0] for r in rows], "measure": "m", "setting": [r[1] for r in rows],
                         "verdict": [r[2] for r in rows]})


def test_replication_frame_combines_seeds_and_excludes_unconverged_settings():
    rows = [("a", "s1", HOLDS), ("a", "s1", HOLDS), ("a", "s2", HOLDS), ("a", "s3", CONTRADICTED),
            ("b", "s1", HOLDS), ("b", "s1", CONTRADICTED), ("b", "s2", HOLDS),  # s1's seeds disagree on b
            ("c", "s1", CONTRADICTED), ("c", "s2", INCONCLUSIVE), ("c", "s3", CONTRADICTED)]
    table = replication_frame(_findings(rows), unconverged=["s3"])
    assert table.columns == list(COLUMNS) and set(table["verdict"]) <= set(REPLICATION_VERDICTS)
    by = {r["claim"]: r for r in table.iter_rows(named=True)}
    assert (by["a"]["verdict"], by["a"]["holds"], by["a"]["excluded"]) == ("replicates", 2, 1)
    assert "s3" in by["a"]["reason"]
    assert (by["b"]["verdict"], by["b"]["holds"], by["b"]["inconclusive"]) == ("inconclusive", 1, 1)
    assert (by["c"]["verdict"], by["c"]["contradicted"], by["c"]["cells"]) == ("fails", 1, 2)
    with_s3 = {r["claim"]: r["verdict"] for r in replication_frame(_findings(rows)).iter_rows(named=True)}
    assert with_s3["a"] == "mixed"


def test_relative_depth_figure_overlays_models_of_different_depth():
    from analysis.figures.depth import depth_figure, relative_depth

    def curve(setting, layers):
        return pl.DataFrame({"measure": "m", "group": "seen", "setting": setting, "layer": list(range(layers + 1)),
                             "delta": [i / layers for i in range(layers + 1)], "ci_low": 0.0, "ci_high": 1.0,
                             "floor": 0.01})

    gaps = pl.concat([curve("deep", 32), curve("shallow", 18)])
    depth = relative_depth(gaps, "setting")
    assert depth.group_by("setting").agg(pl.col("depth").max())["depth"].to_list() == [1.0, 1.0]
    assert depth.filter((pl.col("setting") == "deep") & (pl.col("layer") == 16))["depth"].item() == 0.5
    maps = gaps.with_columns(function=pl.when(pl.col("depth" if "depth" in gaps.columns else "delta") < 0.3)
                             .then(pl.lit("shared")).otherwise(pl.lit("refinement")))
    fig = depth_figure(gaps, maps, measure="m")
    assert len(fig.axes[0].lines) >= 2 + 2  # two curves, the paper's two boundaries


def test_tiny_families_in_the_config_are_the_tested_families():
    from typing import get_args

    from runner.config import TinyModelConfig
    from runner.models.architectures import TESTED_FAMILIES

    assert set(get_args(TinyModelConfig.model_fields["family"].annotation)) == set(TESTED_FAMILIES)


def test_a_config_extends_a_preset_key_by_key(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny\nname: child\ntraining: {max_steps: 3}\n")
    config, tiny = load_config(child), load_config(preset_path("tiny"))
    assert (config.name, config.training.max_steps) == ("child", 3)
    assert config.training.batch_size == tiny.training.batch_size and config.tasks == tiny.tasks
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_explicit_cells_multiply_with_the_grid():
    from runner.sweep import sweep_cells

    base = load_config(preset_path("tiny"), {"sweep.cells": [{"training.method": "lora"},
                                                             {"training.method": "full", "training.lr": 1e-4}]})
    cells = sweep_cells(base, [], None, "0,1")
    assert [c.label for c in cells] == ["method=lora-s0", "method=lora-s1", "method=full-lr=0.0001-s0",
                                        "method=full-lr=0.0001-s1"]
    with pytest.raises(ConfigError, match="both in sweep.cells and in the grid"):
        sweep_cells(base, ["training.method=lora,full"])


def test_the_families_preset_dry_run_states_each_cells_differences(tmp_path):
    result = layerwise("sweep", "--config", "families", "--dry-run", "--out", str(tmp_path / "fam"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    heads = [line for line in result.stdout.splitlines() if line.startswith("== cell")]
    assert len(heads) == 3 and any("training.method=full" in line for line in heads)
    assert "differs from cell name=gemma3-270m-method=lora in: model.name, training.lr, training.method" in result.stdout
    assert result.stdout.count("GPU-hours on") == 3
