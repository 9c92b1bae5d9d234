"""A user's own tasks (tasks.include): task files in registry.yaml's schema, rows from local JSONL /
CSV / Parquet, inline templates, new clusters, one-line errors naming the file and the entry, and
one tiny run that carries a user's task through every stage (examples/user_tasks with other rows)."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

import tasks
from runner.cli import main
from tasks import TaskFileError, get_task, include, load_splits, resolve_tasks
from tasks.userfiles import file_pool_sizes
from tests.conftest import ROOT, TINY, layerwise

EXAMPLE = ROOT / "examples" / "user_tasks"
TASK = "support_ticket_topic"
TOPICS = ("billing", "shipping", "technical")
TINY_TASKS = ("rte", "sst2")
# The run below needs the user's task in every stage, not the tiny run's resources or extras: E joins
# the controls' queue and one lane trains them all (one worker start instead of two), no noise floor, no t-SNE.
ONE_LANE = ["--set", "resources.multitask_workers=1", "--set", "resources.max_concurrent_jobs=1",
            "--set", "baseline.seeds=[]", "--set", "analysis.tsne=false"]


@pytest.fixture(autouse=True)
def _registry_alone():
    """The registry is per process: every test starts, and leaves it, with the packaged tasks alone."""
    include([])
    yield
    include([])


def _rows(n: int, seed: int) -> list[dict]:
    """Support messages other than the example's, in its columns (message, product, topic)."""
    rng = random.Random(seed)
    items = ["blender", "tent", "monitor", "bike lock", "phone case", "coffee grinder", "printer", "yoga mat"]
    say = {"billing": ["I was billed {k} times for the {i}.", "The {i} costs more on my invoice than in the shop.",
                       "Please refund the {i}; the payment went through {k} times."],
           "shipping": ["The {i} has been in transit for {k} days.", "My {i} went to a neighbour {k} streets away.",
                        "Only {k} of my {i} orders were in the box."],
           "technical": ["The {i} stops working after {k} minutes.", "My {i} shows error {k} on start-up.",
                         "The {i} gets hot within {k} seconds of switching on."]}
    out = []
    for _ in range(n):
        topic, item = rng.choice(TOPICS), rng.choice(items)
        out.append({"message": rng.choice(say[topic]).format(i=item, k=rng.randint(2, 9)), "product": item,
                    "topic": topic})
    return out


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _user_folder(tmp: Path, sizes: dict[str, int] | None = None) -> Path:
    """examples/user_tasks copied, its rows replaced by other rows of the same columns."""
    folder = tmp / "user_tasks"
    shutil.copytree(EXAMPLE, folder)
    for seed, (role, n) in enumerate((sizes or {"train": 220, "validation": 32, "test": 48}).items()):
        _write_jsonl(folder / f"{role}.jsonl", _rows(n, seed))
    return folder


def _entry(folder: Path, **changes) -> Path:
    """The example's task file with its one entry changed (a key set to None is dropped)."""
    path = folder / "support_tickets.yaml"
    data = yaml.safe_load(path.read_text())
    entry = data["tasks"][0]
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------ task files
def test_a_folder_includes_every_yaml_in_it_with_a_new_cluster(tmp_path):
    folder = _user_folder(tmp_path)
    second = yaml.safe_load((folder / "support_tickets.yaml").read_text())
    second["tasks"][0]["name"] = "support_ticket_topic_2"
    (folder / "more.yaml").write_text(yaml.safe_dump(second))
    include([folder])
    assert {TASK, "support_ticket_topic_2"} <= {s.name for s in tasks.all_tasks()}
    spec = get_task(TASK)
    assert spec.cluster == "customer_support" and not spec.unseen and spec.files is not None
    assert list(tasks.CLUSTERS)[-1] == "customer_support"  # after the paper's 12
    assert set(tasks.CLUSTERS["customer_support"]) == {TASK, "support_ticket_topic_2"}
    assert tasks.cluster_title("customer_support") == "Customer support"
    # A folder's files are read in name order: more.yaml, then support_tickets.yaml.
    assert [s.name for s in resolve_tasks(["customer_support"])] == ["support_ticket_topic_2", TASK]
    # The user's rows are read whatever tasks.source says, and say where they come from.
    for source in tasks.SOURCES:
        splits = load_splits(TASK, source=source, probe_size=16, val_size=16, test_size=16)
        assert splits.provenance.text == f"user files: {folder}" and not splits.provenance.synthetic
    include([])
    with pytest.raises(tasks.UnknownTaskError):
        get_task(TASK)


def test_a_name_clash_names_both_files(tmp_path):
    folder = _user_folder(tmp_path)
    path = _entry(folder, name="sst2")
    include([folder])
    with pytest.raises(TaskFileError) as info:
        get_task("rte")
    message = str(info.value)
    assert "\n" not in message and str(path) in message and str(tasks.registry.REGISTRY_PATH) in message

    other = tmp_path / "other"
    other.mkdir()
    _entry(folder, name=TASK)
    shutil.copy(folder / "support_tickets.yaml", other / "copy.yaml")
    include([folder, other / "copy.yaml"])
    with pytest.raises(TaskFileError) as info:
        tasks.all_tasks()
    assert str(folder / "support_tickets.yaml") in str(info.value) and str(other / "copy.yaml") in str(info.value)


def test_inline_templates_render_and_test_uses_forward_ones_only(tmp_path):
    include([_user_folder(tmp_path)])
    splits = load_splits(TASK, probe_size=16, val_size=16, test_size=16)
    assert splits.sizes() == {"train": 220, "validation": 16, "probe": 16, "test": 16}
    assert set(splits.train["template_id"]) == {0, 1, 2, 3}  # four inline templates, round robin
    assert set(splits.test["template_id"]) <= {0, 1, 2}  # the inverted one never asks for the answer
    row = splits.train[0]
    raw = json.loads((tmp_path / "user_tasks" / "train.jsonl").read_text().splitlines()[0])
    assert row["prompt"].startswith(f"Customer message about the {raw['product']}:\n{raw['message']}")
    assert "OPTIONS:\n- billing\n- shipping\n- technical" in row["prompt"] and row["target"] == raw["topic"]
    inverted = splits.train[3]
    assert inverted["prompt"].startswith("Write a short message") and inverted["options"] == []
    for target, options in zip(splits.test["target"], splits.test["options"]):
        assert target in options == list(TOPICS)


def test_a_bank_format_and_per_row_options_with_index_targets(tmp_path):
    folder = tmp_path / "mc"
    folder.mkdir()
    rows = [{"q": f"Which number is {k}?", "choices": [str(k), str(k + 1), str(k + 2)], "gold": 0} for k in range(40)]
    for role in ("train", "validation", "test"):
        _write_jsonl(folder / f"{role}.jsonl", rows)
    (folder / "mc.yaml").write_text(yaml.safe_dump({"tasks": [{
        "name": "pick_number", "cluster": "arithmetic", "metric": "accuracy", "format": "mcqa",
        "source": {"files": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
                   "fields": {"question": "q"}, "target": "gold", "options": "choices"}}]}))
    include([folder])
    spec = get_task("pick_number")
    assert spec.per_row_options and spec.options is None and spec.format == "mcqa"
    test = load_splits(spec, probe_size=8, val_size=8, test_size=8).test
    # Index 0 of each row's own choices; prompts that list no OPTIONS still ask for that answer.
    assert all(t == o[0] for t, o in zip(test["target"], test["options"]) if o) and any(test["options"])
    assert all(f"Which number is {t}?" in p for t, p in zip(test["target"], test["prompt"]))


def test_unseen_user_tasks_join_the_held_out_cluster_and_keep_their_own(tmp_path):
    folder = _user_folder(tmp_path)
    _entry(folder, unseen=True)
    include([folder])
    spec = get_task(TASK)
    assert spec.unseen and spec.cluster == "unseen" and spec.flan_cluster == "customer_support"
    assert TASK in {s.name for s in resolve_tasks(["unseen"])}
    assert TASK not in {s.name for s in resolve_tasks(["seen"])}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_files_load_like_jsonl(tmp_path, fmt):
    folder = _user_folder(tmp_path)
    include([folder])
    jsonl = load_splits(TASK, probe_size=16, val_size=16, test_size=16)
    for role in ("train", "validation", "test"):
        frame = pl.read_ndjson(folder / f"{role}.jsonl")
        getattr(frame, f"write_{fmt}")(folder / f"{role}.{fmt}")
        (folder / f"{role}.jsonl").unlink()
    _entry(folder, source={"files": {r: f"{r}.{fmt}" for r in ("train", "validation", "test")},
                           "fields": {"text": "message", "product": "product"}, "target": "topic"})
    include([])  # the files changed under the same path: read them again
    include([folder])
    other = load_splits(TASK, probe_size=16, val_size=16, test_size=16)
    for split in ("train", "validation", "probe", "test"):
        assert getattr(other, split)["prompt"] == getattr(jsonl, split)["prompt"], split


def test_editing_a_row_changes_the_plans_data_key(tmp_path):
    from runner.config import load_config
    from runner.data import select_tasks
    from runner.plan import make_plan

    folder = _user_folder(tmp_path)
    overrides = {"tasks.include": [str(folder)], "tasks.select": [TASK, "rte"]}

    def key() -> str:
        config = load_config(TINY, overrides)
        return make_plan(config, tmp_path / "out", select_tasks(config)).data_key

    before = key()
    assert key() == before
    _write_jsonl(folder / "test.jsonl", _rows(48, 99))
    assert key() != before


# ------------------------------------------------------------------ one-line errors
def _one_line_error(folder: Path, *names: str) -> str:
    with pytest.raises(TaskFileError) as info:
        include([folder])
        file_pool_sizes(get_task(TASK))
    message = str(info.value)
    assert "\n" not in message and TASK in message, message
    for name in names:
        assert name in message, message
    return message


def test_unknown_template_field_names_file_entry_and_field(tmp_path):
    folder = _user_folder(tmp_path)
    path = _entry(folder, templates=[{"input": "{text} and {sentiment}?{options_}", "target": "{answer}"}])
    _one_line_error(folder, str(path), "'sentiment'", "source.fields")


def test_unknown_metric_and_cluster_and_key(tmp_path):
    folder = _user_folder(tmp_path)
    path = _entry(folder, metric="f1")
    assert "choose one of: accuracy, rouge_l, bleu" in _one_line_error(folder, str(path), "'f1'")
    _entry(folder, metric="accuracy", cluster="customer support!")
    _one_line_error(folder, str(path), "unknown cluster")
    _entry(folder, cluster="customer_support", templtes=[])
    assert "did you mean 'templates'" in _one_line_error(folder, str(path))
    _entry(folder, templtes=None, source=None)
    _one_line_error(folder, str(path), "has no rows")


def test_missing_column_names_the_file_and_the_column(tmp_path):
    folder = _user_folder(tmp_path)
    rows = [{"message": r["message"], "topic": r["topic"]} for r in _rows(32, 5)]
    _write_jsonl(folder / "validation.jsonl", rows)
    _one_line_error(folder, str(folder / "validation.jsonl"), "no column 'product'")


def test_empty_split_and_bad_target_name_the_file(tmp_path):
    folder = _user_folder(tmp_path)
    (folder / "test.jsonl").write_text("")
    _one_line_error(folder, str(folder / "test.jsonl"), "empty")
    _write_jsonl(folder / "test.jsonl", [{**r, "topic": "refunds"} for r in _rows(40, 6)])
    _one_line_error(folder, str(folder / "test.jsonl"), "'refunds'", "row 1")


def test_layerwise_tasks_include_lists_the_users_tasks(tmp_path, capsys):
    folder = _user_folder(tmp_path)
    assert main(["tasks", "--include", str(folder)]) == 0
    out = capsys.readouterr().out
    assert TASK in out and "customer_support" in out and "user files" in out
    assert "1 tasks in 1 clusters" in out and "sst2" not in out


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory, real_run) -> Path:
    """One tiny run on a user's task beside two registered ones, shared by the assertions below."""
    tmp = tmp_path_factory.mktemp("user-run")
    folder = _user_folder(tmp)
    out = tmp / "out"
    result = real_run("run", "--config", str(TINY), "--out", str(out), "--set", f"tasks.include=[{folder}]",
                      "--set", f"tasks.select=[{TASK},{','.join(TINY_TASKS)}]", *ONE_LANE)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_a_run_carries_the_users_task_through_every_layer(user_run):
    cka = pl.read_parquet(user_run / "cka.parquet")
    layers = yaml.safe_load(TINY.read_text())["model"]["tiny"]["num_layers"] + 1
    mine = cka.filter(pl.col("task") == TASK)
    assert set(mine["cluster"]) == {"customer_support"}
    for experimental in ("pretrained", "multitask"):
        assert sorted(mine.filter(pl.col("experimental") == experimental)["layer"]) == list(range(layers))
    assert mine["cka"].is_finite().all()
    assert set(cka["task"]) == {TASK, *TINY_TASKS}
    scores = pl.read_parquet(user_run / "eval.parquet")
    assert TASK in set(scores["task"])


def test_a_missing_column_fails_in_one_line_before_ray_starts(tmp_path):
    folder = _user_folder(tmp_path)
    _write_jsonl(folder / "validation.jsonl", [{"message": r["message"], "topic": r["topic"]} for r in _rows(32, 7)])
    out = tmp_path / "out"
    started = time.monotonic()
    result = layerwise("run", "--config", str(TINY), "--out", str(out), "--set", f"tasks.include=[{folder}]",
                       "--set", f"tasks.select=[{TASK},rte]", timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("layerwise: error:") and len(lines) <= 3
    assert str(folder / "validation.jsonl") in lines[-1] and TASK in lines[-1] and "'product'" in lines[-1]
    assert time.monotonic() - started < 60
    assert not out.exists()  # no lock, no logs, no Ray session: it failed before any of them
