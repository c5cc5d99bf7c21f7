"""ray_config.yaml passes Ray's own cluster-config validation and sets up what the guide promises."""
from __future__ import annotations

import argparse
import copy
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "ray_config.yaml").read_text())


def test_ray_accepts_the_config_as_ray_up_would(config):
    prepared = prepare_config(copy.deepcopy(config))  # the steps `ray up` runs first
    validate_config(prepared)
    assert set(prepared["available_node_types"]) == set(config["available_node_types"])
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_validation_rejects_a_misspelt_field(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["max_worker"] = 4
    with pytest.raises(jsonschema.ValidationError, match="'max_worker' was unexpected"):
        validate_config(prepare_config(broken))


def test_gpu_workers_autoscale_and_the_head_takes_no_jobs(config):
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert workers and all(n["resources"]["GPU"] >= 1 and n["min_workers"] < n["max_workers"] for n in workers)
    assert config["docker"]["image"].endswith("-gpu")


def test_nodes_install_the_project_and_start_ray(config):
    mounted = {remote: local for remote, local in config["file_mounts"].items()}
    assert mounted == {"/home/ray/zssrgan": "."}
    assert any("pip install --quiet -e /home/ray/zssrgan" in c for c in config["setup_commands"])
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in config["worker_start_ray_commands"])


def test_mlflow_server_listens_on_the_private_address_with_a_sqlite_store_on_the_head_disk(config):
    start = config["head_start_ray_commands"][-1]
    launcher = shlex.split(start)
    inner = launcher[launcher.index("-c") + 1]  # the shell that records its pid, then becomes the server
    args = shlex.split(inner[inner.index("exec mlflow server"):])
    host = args[args.index("--host") + 1]
    assert host == "$HEAD_IP" and "HEAD_IP=$(hostname -I" in start  # never 0.0.0.0
    store = args[args.index("--backend-store-uri") + 1]
    assert store.startswith("sqlite:////home/ray/mlflow/")
    assert "-v /home/ubuntu/mlflow:/home/ray/mlflow" in config["docker"]["head_run_options"]
    assert args[args.index("--port") + 1] == "5000"


def test_the_guide_only_uses_flags_that_zssrgan_run_has():
    from zssrgan.cli import COMMANDS

    run_parser = argparse.ArgumentParser()
    COMMANDS["run"].add_arguments(run_parser)
    known = {flag for action in run_parser._actions for flag in action.option_strings}
    guide = (ROOT / "cluster" / "README.md").read_text()
    code = "\n".join(re.findall(r"```bash\n(.*?)```", guide, re.S)).replace("\\\n", " ")
    used = {flag for command in re.findall(r"zssrgan run [^\n]*", code)
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", command)}
    assert used, "the guide shows no `zssrgan run` command"
    assert used <= known, f"flags in cluster/README.md that `zssrgan run` does not have: {sorted(used - known)}"
