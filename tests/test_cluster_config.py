from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_passes_rays_schema_validation():
    util = pytest.importorskip("ray.autoscaler._private.util")
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    util.validate_config(util.prepare_config(config))  # fill Ray defaults, then the JSON schema check
    workers = config["available_node_types"]["gpu_a100"]
    assert workers["resources"]["GPU"] == 8 and workers["node_config"]["InstanceType"] == "p4d.24xlarge"
    assert workers["min_workers"] < workers["max_workers"]


def test_cluster_yaml_schema_validation_can_fail():
    util = pytest.importorskip("ray.autoscaler._private.util")
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["available_node_types"]["gpu_a100"]["min_workers"] = "lots"
    with pytest.raises(Exception):
        util.validate_config(util.prepare_config(config))
