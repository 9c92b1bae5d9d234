"""The hub and flan_submix paths, run against local parquet files in the hub's layout, offline."""

from __future__ import annotations

import datasets
import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import TaskSourceError, load_splits
from tasks.sources import SUBMIX_ID


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: both libraries read the offline flag from their config at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)


def _write(root, repo: str, config: str, split: str, rows: list[dict]) -> None:
    """One parquet shard where refs/convert/parquet keeps it: <repo>/<config>/<split>/0000.parquet."""
    folder = root / repo / config / split
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "0000.parquet")


def _anli_rows(n: int, tag: str) -> list[dict]:
    return [{"uid": f"{tag}{i}", "premise": f"{tag} premise {i}.", "hypothesis": f"{tag} hypothesis {i}.",
             "label": i % 3, "reason": ""} for i in range(n)]


def test_hub_path_maps_fields_and_labels(tmp_path):
    for split, n in (("train_r1", 40), ("dev_r1", 10), ("test_r1", 12)):
        _write(tmp_path, "facebook/anli", "default", split, _anli_rows(n, split))
    s = load_splits("anli_r1", source="hub", data_dir=str(tmp_path), probe_size=6, val_size=4, test_size=4)
    assert s.sizes() == {"train": 40, "validation": 4, "probe": 6, "test": 4}
    options = ["Yes", "It's impossible to say", "No"]
    for eid, prompt, target, opts in zip(s.train["example_id"], s.train["prompt"], s.train["target"], s.train["options"]):
        i = int(eid.rsplit(":", 1)[1])
        assert f"train_r1 premise {i}." in prompt or f"train_r1 hypothesis {i}." in prompt + target
        if opts:
            assert opts == options and target == options[i % 3]
    assert all("test_r1" in p or "test_r1" in t for p, t in zip(s.probe["prompt"], s.probe["target"]))
    assert all("dev_r1" in p or "dev_r1" in t for p, t in zip(s.validation["prompt"], s.validation["target"]))
    limited = load_splits("anli_r1", source="hub", data_dir=str(tmp_path), probe_size=6, val_size=4, test_size=4,
                          max_train=10)
    assert len(limited.train) == 10


def test_hub_label_map_carving_and_nested_fields(tmp_path):
    # cb: hub ids 0 entailment, 1 contradiction, 2 neutral; no validation split, so it is carved off train
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": i % 3, "idx": i} for i in range(30)]
    _write(tmp_path, "aps/super_glue", "cb", "train", rows)
    _write(tmp_path, "aps/super_glue", "cb", "validation", rows[:10])
    cb = load_splits("cb", source="hub", data_dir=str(tmp_path), probe_size=4, val_size=5, test_size=2)
    assert len(cb.train) == 25 and len(cb.validation) == 5
    want = {0: "Yes", 1: "No", 2: "It's impossible to say"}
    for eid, target, opts in zip(cb.train["example_id"], cb.train["target"], cb.train["options"]):
        if opts:
            assert target == want[int(eid.rsplit(":", 1)[1]) % 3]
    # wmt16: the pair sits in a nested `translation` struct
    pair = [{"translation": {"de": f"Hallo {i}", "en": f"Hello {i}"}} for i in range(12)]
    for split in ("train", "validation", "test"):
        _write(tmp_path, "wmt/wmt16", "de-en", split, pair)
    de = load_splits("wmt16_translate_deen", source="hub", data_dir=str(tmp_path), probe_size=3, val_size=2, test_size=2)
    row = de.train[0]  # template 0: English -> German
    assert row["prompt"].startswith("Translate to German") and "Hello 0" in row["prompt"] and row["target"] == "Hallo 0"
    # arc: per-row options from the choices struct and answerKey
    arc = [{"id": str(i), "question": f"Q{i}?", "choices": {"text": ["w", "x", "y", "z"], "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4]} for i in range(12)]
    for split in ("train", "validation", "test"):
        _write(tmp_path, "allenai/ai2_arc", "ARC-Easy", split, arc)
    e = load_splits("arc_easy", source="hub", data_dir=str(tmp_path), probe_size=3, val_size=2, test_size=2)
    assert e.train[0]["options"] == ["w", "x", "y", "z"] and e.train[0]["target"] == "w"
    assert e.train[1]["target"] == "x"


def test_missing_dataset_error_names_task_hub_id_and_offline_alternative(tmp_path):
    with pytest.raises(TaskSourceError) as info:
        load_splits("glue_mrpc", source="hub", data_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and "glue_mrpc" in msg and "nyu-mll/glue" in msg and "source='offline'" in msg
    with pytest.raises(TaskSourceError) as info:  # the real hub call, with the network switched off
        load_splits("sst2", source="hub")
    msg = str(info.value)
    assert "\n" not in msg and "sst2" in msg and "nyu-mll/glue" in msg and "offline" in msg
    with pytest.raises(TaskSourceError, match="opinion_abstracts_idebate.*offline"):
        load_splits("opinion_abstracts_idebate", source="hub")


def test_flan_submix_filters_task_and_template_type(tmp_path):
    rows = []
    for i in range(40):
        rows.append({"inputs": f"sst2 zs {i}", "targets": "positive", "task_source": "Flan2021",
                     "task_name": "glue/sst2:2.0.0", "template_type": "zs_opt" if i % 2 else "zs_noopt"})
        rows.append({"inputs": f"sst2 fs {i}", "targets": "negative", "task_source": "Flan2021",
                     "task_name": "glue/sst2:2.0.0", "template_type": "fs_opt"})
        rows.append({"inputs": f"cola {i}", "targets": "acceptable", "task_source": "Flan2021",
                     "task_name": "glue/cola:2.0.0", "template_type": "zs_opt"})
    folder = tmp_path / SUBMIX_ID / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000-of-00001.parquet")
    s = load_splits("sst2", source="flan_submix", data_dir=str(tmp_path), probe_size=4, val_size=3, test_size=2)
    every = [p for _, ds in s.items() for p in ds["prompt"]]
    assert all(p.startswith("sst2 zs") for p in every)
    assert len(s.train) + len(s.validation) + len(s.probe) + len(s.test) <= 40 and len(s.train) == 31
    assert set(s.train["template_id"]) == {-1}
    assert not set(s.train["example_id"]) & set(s.probe["example_id"])
    with pytest.raises(TaskSourceError, match="flan2021_submix_original"):
        load_splits("sst2", source="flan_submix", data_dir=str(tmp_path / "empty"))
