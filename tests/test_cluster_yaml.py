"""`cluster.yaml`, checked offline: the schema shipped inside the installed Ray package, Ray's
own config validation, and the properties this project relies on (a GPU-free on-demand head,
GPU worker types that declare their GPUs, S3 access for workers, nothing exposed but SSH)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"
GPUS_PER_INSTANCE = {"g5.xlarge": 1, "p4d.24xlarge": 8, "p5.48xlarge": 8}


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def worker_types(cluster: dict) -> dict[str, dict]:
    return {name: t for name, t in cluster["available_node_types"].items() if name != cluster["head_node_type"]}


def test_matches_the_schema_of_the_installed_ray(cluster):
    schema_path = os.path.join(os.path.dirname(ray.autoscaler.__file__), "ray-schema.json")
    jsonschema.validate(cluster, json.loads(Path(schema_path).read_text()))
    # Ray's own checks (defaults merged, node types and worker bounds), no AWS calls.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_the_head_is_an_on_demand_cpu_node_that_runs_no_training(cluster):
    head = cluster["available_node_types"][cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    assert "InstanceMarketOptions" not in head["node_config"]  # spot would take the drivers down
    assert head["node_config"]["InstanceType"].startswith(("m5.", "m6i.", "m7i."))


def test_gpu_worker_types_declare_their_gpus_and_s3_access(cluster):
    types = worker_types(cluster)
    assert {t["node_config"]["InstanceType"] for t in types.values()} >= {"g5.xlarge", "p4d.24xlarge"}
    for name, t in types.items():
        node = t["node_config"]
        assert t["resources"]["GPU"] == GPUS_PER_INSTANCE[node["InstanceType"]], name
        assert 0 <= t["min_workers"] <= t["max_workers"] <= cluster["max_workers"], name
        assert node["IamInstanceProfile"]["Arn"].startswith("arn:aws:iam::"), name
        assert node["ImageId"], name  # a GPU image with the NVIDIA driver and Docker
    assert sum(t["min_workers"] for t in types.values()) <= cluster["max_workers"]


def test_only_ssh_is_exposed(cluster):
    # Ray's security group allows SSH and intra-cluster traffic; extra rules would open more.
    assert not cluster["provider"].get("security_group", {}).get("IpPermissions")
    for name, t in cluster["available_node_types"].items():
        assert "SecurityGroupIds" not in t["node_config"], name
        assert "NetworkInterfaces" not in t["node_config"], name


def test_nodes_run_this_ray_version_and_install_the_project(cluster):
    assert cluster["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py311-gpu"
    assert any("pip install" in c and "deeplandscape" in c for c in cluster["setup_commands"])
    assert ".gitignore" in cluster["rsync_filter"]  # .venv and outputs stay behind
