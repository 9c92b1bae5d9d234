from pathlib import Path

import pytest

from runner.config import ConfigError, load_config, preset_path
from tests.conftest import layerwise


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_presets_load_and_hash_stably():
    for name in ("tiny",):
        first, second = load_config(preset_path(name)), load_config(preset_path(name))
        assert first.digest() == second.digest()
        assert len(first.digest()) == 12


def test_hash_changes_with_any_value():
    base = load_config(preset_path("tiny"))
    changed = load_config(preset_path("tiny"), {"training.seed": 7})
    assert changed.training.seed == 7
    assert base.digest() != changed.digest()
    assert base.digest("model") == changed.digest("model")


@pytest.mark.parametrize("text, fragment", [
    ("training:\n  lrr: 0.1\n", "training.lrr: unknown key (did you mean 'lr'?"),
    ("trainig:\n  lr: 0.1\n", "trainig: unknown key (did you mean 'training'?"),
    ("training:\n  max_steps: many\n", "training.max_steps: Input should be a valid integer"),
    ("lora:\n  r: 0\n", "lora.r: Input should be greater than or equal to 1"),
    ("deepspeed:\n  zero_stage: 3\n", "deepspeed.zero_stage:"),
    ("resources:\n  multitask_workers: 3\n", "must be divisible by resources.multitask_workers 3"),
    ("training:\n  control_max_steps: 10\n  control_min_steps: 12\n", "control_min_steps 12 exceeds control_max_steps 10"),
    ("training: [\n", "is not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_bad_config_gives_one_line_naming_file_and_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert fragment in message
    assert message.startswith(str(path))
    assert "\n" not in message


def test_missing_config_file_says_where_presets_are(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_misspelled_key_in_one_line(tmp_path):
    path = write(tmp_path, "name: x\nextraction:\n  probe_sise: 8\n")
    result = layerwise("run", "--config", str(path), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("layerwise: error:") and "extraction.probe_sise" in lines[-1]
    assert "Traceback" not in result.stderr


def test_cli_help_lists_every_stage():
    result = layerwise("--help", timeout=120)
    assert result.returncode == 0
    for command in ("run", "train", "extract", "analyze", "report", "tasks"):
        assert command in result.stdout
