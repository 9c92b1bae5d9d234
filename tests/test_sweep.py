"""`layerwise sweep`: 2 LoRA ranks x 2 seeds on a cut-down tiny experiment, trained side by side."""

import polars as pl

from tests.conftest import TINY

TASKS = ["rte", "trec"]
SMALL = ["--set", f"tasks.select=[{','.join(TASKS)}]", "--set", "training.max_steps=8",
         "--set", "training.control_max_steps=3", "--set", "analysis.tsne=false",
         "--set", "evaluation.enabled=false", "--set", "resources.controls_per_run=2",
         # The sweep's own seed cells give the seed-to-seed baseline; no reseeded twins inside a cell.
         "--set", "baseline.seeds=[]",
         # E on one worker, in the controls' queue, and one Ray Train run at a time: each cell's three
         # models train in one lane, one worker start per cell (the tiny run covers a 2-worker E and
         # two runs at once).
         "--set", "resources.multitask_workers=1", "--set", "resources.max_concurrent_jobs=1"]


def test_sweep_writes_every_cell_and_a_seed_baseline(tmp_path, real_run):
    result = real_run("sweep", "--config", str(TINY), "--out", str(tmp_path), "--lora-ranks", "2,4",
                       "--seeds", "0,1", *SMALL, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    # One base model, one worker shape: one lane drains every cell's models (each by its own config).
    assert "12 models in 1 Ray Train runs" in result.stdout + result.stderr

    cka = pl.read_parquet(tmp_path / "cka.parquet")
    cells = cka.select("lora_rank", "seed").unique()
    assert set(cells.iter_rows()) == {(2, 0), (2, 1), (4, 0), (4, 1)}
    layers = cka["layer"].n_unique()
    per_cell = cka.group_by("lora_rank", "seed").len()
    assert (per_cell["len"] == 2 * len(TASKS) * layers).all()
    assert cka["cka"].is_finite().all()
    # Each cell trained its own adapters: the rank changes what E learns, so its CKA differs.
    def curve(rank):
        return (cka.filter((pl.col("lora_rank") == rank) & (pl.col("seed") == 0) & (pl.col("experimental") == "multitask"))
                .sort("task", "layer")["cka"].to_numpy())
    assert abs(curve(2) - curve(4)).max() > 1e-6

    baseline = pl.read_parquet(tmp_path / "seed_baseline.parquet")
    assert set(baseline["lora_rank"]) == {2, 4} and set(zip(baseline["seed_a"], baseline["seed_b"])) == {(0, 1)}
    assert baseline.height == 2 * len(TASKS) * layers
    # The embedding layer is untouched by LoRA: seeds agree exactly there and only there.
    assert baseline.filter(pl.col("layer") == 0)["cka"].min() > 1 - 1e-6
    assert baseline.filter(pl.col("layer") == layers - 1)["cka"].max() < 1 - 1e-6
    assert (tmp_path / "figures" / "sweep_cka_by_rank.png").stat().st_size > 10_000
    for cell in ("r2-s0", "r2-s1", "r4-s0", "r4-s1"):
        assert (tmp_path / cell / "report.html").exists()


def test_sweep_over_family_and_method_writes_a_replication_table_and_relative_depth(tmp_path, real_run):
    """The issue's bar: a grid over any keys (here a model family and the training method), the keys as
    columns, a replication verdict per (claim, measure) and the sweep report's sections."""
    from analysis.claims.replication import COLUMNS, REPLICATION_VERDICTS

    result = real_run("sweep", "--config", str(TINY), "--out", str(tmp_path), "--grid", "model.tiny.family=llama,qwen2",
                       "--grid", "training.method=lora,full", *SMALL, timeout=1500)
    assert result.returncode == 0, result.stderr[-4000:]
    # Two base models: a lane for each family's cells, full and LoRA jobs alike.
    assert "12 models in 2 Ray Train runs" in result.stdout + result.stderr
    cka = pl.read_parquet(tmp_path / "cka.parquet")
    combos = set(cka.select("model.tiny.family", "training.method").unique().iter_rows())
    assert combos == {("llama", "lora"), ("llama", "full"), ("qwen2", "lora"), ("qwen2", "full")}
    # Each full cell saved whole models (no adapter); each LoRA cell adapters.
    for cell in ("family=llama-method=full", "family=qwen2-method=full"):
        models = list((tmp_path / cell / "models").glob("*/config.json"))
        assert models and not list((tmp_path / cell / "models").glob("*/adapter_config.json"))
    assert list((tmp_path / "family=llama-method=lora" / "models").glob("*/adapter_config.json"))
    replication = pl.read_parquet(tmp_path / "replication.parquet")
    assert tuple(c for c in replication.columns if c != "experimental") == COLUMNS and replication.height > 0
    assert set(replication["verdict"]) <= set(REPLICATION_VERDICTS)
    assert (replication["cells"] + replication["excluded"] == 4).all()
    report = (tmp_path / "report.html").read_text()
    assert report.index("id='replication'") < report.index("id='relative_depth'") < report.index("id='cells'")
    assert (tmp_path / "figures" / "relative_depth.png").stat().st_size > 10_000
    training = pl.read_parquet(tmp_path / "training.parquet")
    assert set(training.filter(pl.col("training.method") == "full")["kind"]) == {"full"}
