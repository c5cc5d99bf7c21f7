"""Sweep files (``zssrgan run --config``): every option in one file, checked before anything starts,
overridden by the flags given; the example files run as they are."""
from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml

from cluster.jobs import SweepSpec, base_config, expand, file_hash, sweep_yaml
from zssrgan.cli import build_parser, main
from zssrgan.cli import run_cmd, sweep_file
from zssrgan.cli.run_cmd import spec_from_args
from zssrgan.datasets import make_dataset
from zssrgan.errors import InputError
from zssrgan.io import save_image

ROOT = Path(__file__).resolve().parent.parent
EVERY_KEY = {
    "data": "images", "methods": ["bicubic", "zssrgan-fixed"], "estimator": "cross-scale", "scales": [2, 4],
    "seeds": "0,1", "preset": "quick", "set": {"zssr.iters": 7, "zssr.lr": 0.01, "kernelgan.fast_generator": False,
                                               "kernelgan.lr_milestones": [0.5, 0.75]},
    "grid": {"zssrgan.disc_ratio": [0.2, 0.8]}, "real": True, "device": "cpu", "experiment": "ablation",
    "tracking_uri": "sqlite:///elsewhere.db", "address": "auto", "workers": 3, "gpus_per_job": 0.25,
    "cpus_per_job": 2, "max_retries": 4,
}


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder with two small images in ``images/``, where the sweep files are written."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        save_image(tmp_path / "images" / f"{name}.png", rng.random((24, 24, 3)))
    return tmp_path


def _write(folder: Path, document, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document), encoding="utf-8")
    return path


def _spec(*argv: str) -> SweepSpec:
    return spec_from_args(build_parser().parse_args(["run", *argv]))


def test_every_run_option_has_a_key_named_like_its_flag():
    run = argparse.ArgumentParser()
    run_cmd.add_arguments(run)
    flags = {o[2:].replace("-", "_") for a in run._actions for o in a.option_strings if o.startswith("--")}
    assert flags - {"help", "config", "dry_run"} == set(sweep_file.FIELDS)
    fields = {f.name for f in dataclasses.fields(SweepSpec)} - {"progress"}
    assert {field for field, _ in sweep_file.FIELDS.values()} == fields


def test_a_file_with_every_key(folder, monkeypatch):
    monkeypatch.chdir(folder.parent)  # relative data paths are relative to the file, not to here
    spec = _spec("--config", str(_write(folder, EVERY_KEY)))
    assert spec.data == [str(folder / "images")]
    assert (spec.methods, spec.scales, spec.seeds) == (["bicubic", "zssrgan-fixed"], [2, 4], [0, 1])
    assert spec.preset == "quick"
    assert spec.grid == {"zssrgan.disc_ratio": ["0.2", "0.8"]}
    assert (spec.real, spec.experiment, spec.tracking_uri, spec.address) == (True, "ablation", "sqlite:///elsewhere.db",
                                                                             "auto")
    assert (spec.workers, spec.gpus_per_job, spec.cpus_per_job, spec.max_retries) == (3, 0.25, 2.0, 4)
    cfg = base_config(spec)
    assert (cfg.zssr.iters, cfg.zssr.lr, cfg.kernelgan.fast_generator) == (7, 0.01, False)
    assert (cfg.kernelgan.lr_milestones, cfg.device, cfg.estimator, cfg.real) == ((0.5, 0.75), "cpu", "cross-scale",
                                                                                 True)
    sweep = expand(spec)
    # 2 images x 2 scales x 2 seeds; the ratio does not make new estimates
    assert Counter(j.method for j in sweep.jobs) == {"estimate": 8, "bicubic": 8, "zssrgan-fixed": 16}


def test_a_file_and_the_same_flags_make_the_same_sweep(folder):
    document = {"data": "images", "methods": "zssr,zssrgan-fixed", "preset": "quick", "seed": 3,
                "set": {"zssr.lr": 1e-3, "kernelgan.iters": 20}, "grid": {"zssrgan.disc_ratio": "0.2,0.8"}}
    from_file = _spec("--config", str(_write(folder, document)))
    from_flags = _spec("--data", str(folder / "images"), "--methods", "zssr,zssrgan-fixed", "--preset", "quick",
                       "--seed", "3", "--set", "zssr.lr=0.001", "--set", "kernelgan.iters=20",
                       "--grid", "zssrgan.disc_ratio=0.2,0.8")
    assert expand(from_file).sweep_id == expand(from_flags).sweep_id
    assert from_file.seeds == [3] and base_config(from_file).zssr.lr == 0.001


def test_flags_override_the_file_and_set_and_grid_key_by_key(folder, tmp_path_factory):
    path = _write(folder, {"data": "images", "methods": ["zssr"], "scales": [2], "seeds": [0, 1], "experiment": "a",
                           "set": {"zssr.iters": 5, "zssr.lr": 0.01}, "workers": 2,
                           "grid": {"zssr.iters": [5, 10], "zssr.crop": [16, 24]}})
    other = tmp_path_factory.mktemp("other")
    save_image(other / "c.png", np.zeros((24, 24, 3)))
    spec = _spec("--config", str(path), "--data", str(other), "--scales", "4", "--experiment", "b",
                 "--set", "zssr.lr=0.02", "--grid", "zssr.crop=32", "--seed", "5", "--device", "cpu")
    assert spec.data == [str(other)] and spec.scales == [4] and spec.seeds == [5] and spec.experiment == "b"
    assert spec.workers == 2 and spec.methods == ["zssr"]  # not given: the file's
    assert spec.grid == {"zssr.iters": ["5", "10"], "zssr.crop": ["32"]}
    cfg = base_config(spec)
    assert (cfg.zssr.lr, cfg.zssr.iters, cfg.device) == (0.02, 5, "cpu")
    # the defaults stand where neither the file nor the flags say
    assert (spec.preset, spec.real, spec.cpus_per_job, spec.max_retries) == ("paper", False, 1.0, 2)


@pytest.mark.parametrize("every_key", [True, False])
def test_the_resolved_sweep_is_a_sweep_file_of_the_same_sweep(folder, every_key):
    given = EVERY_KEY if every_key else {"data": "images", "methods": "bicubic"}  # the others null: defaults
    spec = _spec("--config", str(_write(folder, given)), "--set", "zssr.iters=9", "--set", "zssr.iters=8")
    again = _spec("--config", str(_write(folder, sweep_yaml(spec), "resolved.yaml")))
    assert dataclasses.replace(again, overrides=[]) == dataclasses.replace(spec, overrides=[])
    assert base_config(again) == base_config(spec) and base_config(again).zssr.iters == 8
    assert expand(again).sweep_id == expand(spec).sweep_id


def test_files_that_config_keys_name_are_relative_to_the_file_like_its_data(folder, tmp_path_factory, monkeypatch):
    (folder / "models").mkdir()
    for name in ("x2.npz", "other.npz"):
        (folder / "models" / name).write_bytes(name.encode())
    path = _write(folder, {"data": "images", "methods": "kernelgan-zssr", "estimator": "auto",
                           "set": {"auto.blur_model": "models/x2.npz"},
                           "grid": {"fkp.prior": ["models/x2.npz", "models/other.npz"]}})
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    spec = _spec("--config", str(path))
    assert base_config(spec).auto.blur_model == str(folder / "models" / "x2.npz")
    assert spec.grid["fkp.prior"] == [str(folder / "models" / n) for n in ("x2.npz", "other.npz")]
    resolved = yaml.safe_load(sweep_yaml(spec))
    assert resolved["set"]["auto.blur_model"] == str(folder / "models" / "x2.npz")
    assert base_config(spec).fkp.prior == ""  # the grid's, below
    estimates = [job for job in expand(spec).jobs if job.kind == "estimate"]  # auto's: fkp.prior not read
    assert len(estimates) == 2 and all(j.files == {"auto.blur_model": file_hash(folder / "models" / "x2.npz")}
                                       for j in estimates)
    assert {j.grid.get("fkp.prior") for j in expand(spec).jobs} == {None}


@pytest.mark.parametrize("document, words", [
    ({"tracking-uri": "x"}, "unknown key 'tracking-uri' (did you mean tracking_uri?); valid keys: data, methods,"),
    ({"scale": [2]}, "unknown key 'scale' (did you mean scales?)"),
    ({"scales": [2, "x4"]}, "scales: expected a list of integers"),
    ({"workers": True}, "workers: expected an integer, got True (bool)"),
    ({"real": "yes"}, "real: expected true or false"),
    ({"set": ["zssr.iters=5"]}, "set: expected a mapping of dotted config keys to values"),
    ({"set": {"zssr.iterz": 5}}, "set: unknown config key 'zssr.iterz'; valid keys:"),
    ({"set": {"zssr.iters": 1.5}}, "set: zssr.iters: '1.5' is not a valid int"),
    ({"grid": {"zssr.iters": []}}, "grid: zssr.iters has no values"),
    ({"methods": ["zssr", "nope"]}, "methods: unknown method 'nope'; choose one of: bicubic, zssr,"),
    ({"estimator": "nope"}, "estimator: unknown kernel estimator 'nope'; choose one of: kernelgan, kernelgan-fkp, cross-scale"),
    ({"preset": "fast"}, "preset: 'fast' is not one of: paper, quick"),
    ({"seed": 1, "seeds": [2]}, "give either seed or seeds, not both"),
    ("- data\n- methods\n", "must be a mapping of keys to values (keys: data, methods,"),
    ("data: [images\n", "is not valid YAML"),
])
def test_bad_files_are_refused_before_ray_or_mlflow_start(folder, capsys, document, words):
    store = folder / "mlflow.db"
    if isinstance(document, dict):
        document = {"data": "images", "methods": ["bicubic"], "tracking_uri": f"sqlite:///{store}", **document}
    path = _write(folder, document)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "zssrgan run: error: " in err and words in err and str(path) in err
    assert not store.exists() and not ray.is_initialized()


def test_data_and_methods_come_from_the_file_or_the_flags(folder, capsys):
    assert main(["run", "--config", str(_write(folder, {"data": "images"})), "--dry-run"]) == 2
    assert "no methods to run: give --methods M1,M2 or `methods:` in a sweep file" in capsys.readouterr().err
    assert main(["run", "--methods", "bicubic", "--dry-run"]) == 2
    assert "no data to run: give --data PATH" in capsys.readouterr().err


# a user's plugin method with settings of its own (config keys "sweep_plugin:SCALED.<field>")
PLUGIN = """
from dataclasses import dataclass
import numpy as np
from zssrgan.config import file_field
from zssrgan.methods import Method
from zssrgan.results import MethodResult

@dataclass
class Gain:
    gain: float = 1.0
    table: str = file_field()

def scaled(lr, scale, cfg, kernels=None, estimate=None, callback=None, settings=None):
    return MethodResult(sr=np.clip(settings.gain * np.repeat(np.repeat(lr, scale, 0), scale, 1), 0, 1), kernel=None)

SCALED = Method(scaled, "nearest-neighbour times a gain", settings=Gain)
"""


def test_a_file_that_is_missing_not_text_or_not_yaml_is_refused_in_one_line(folder):
    path = folder / "sweep.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(sweep_file.SweepFileError, match="sweep.yaml is not a text file"):
        _spec("--config", str(path))
    for missing, words in ((folder / "nope.yaml", "no sweep file at .*nope.yaml$"), (folder, r"\(a folder\)")):
        with pytest.raises(sweep_file.SweepFileError, match=words):
            _spec("--config", str(missing))
    path.write_text("data: [images\nmethods: x\n")
    with pytest.raises(sweep_file.SweepFileError, match=r"not valid YAML: while parsing a flow sequence \(line 1, "
                                                        r"column 7\); expected ',' or '\]', but got ':' \(line 2, column 8\)"):
        _spec("--config", str(path))


def test_a_plugin_s_settings_are_config_keys_of_the_file(folder, monkeypatch):
    (folder / "sweep_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    document = {"data": "images", "methods": ["bicubic", "sweep_plugin:SCALED"],
                "set": {"sweep_plugin:SCALED.gain": 3}, "grid": {"sweep_plugin:SCALED.gain": [0.5, 2]}}
    sweep = expand(_spec("--config", str(_write(folder, document))))
    assert Counter(str(j.grid.get("sweep_plugin:SCALED.gain")) for j in sweep.jobs) == {"None": 2, "0.5": 2, "2.0": 2}
    # the plugin may come from the command line; its keys in the file are checked against it then
    only_set = _write(folder, {"data": "images", "methods": ["bicubic"], "set": {"sweep_plugin:SCALED.gain": 3}})
    assert base_config(_spec("--config", str(only_set), "--methods", "sweep_plugin:SCALED")).plugins[
        "sweep_plugin:SCALED"].gain == 3.0
    with pytest.raises(sweep_file.SweepFileError, match=r"sweep.yaml: set: unknown config key 'sweep_plugin:SCALED"
                                                        r"\.gain'; valid keys: .* \(a plugin's settings are keys"):
        _spec("--config", str(only_set))  # without the plugin, its key is unknown
    document["grid"] = {"sweep_plugin:SCALED.gain": ["loud"]}
    with pytest.raises(sweep_file.SweepFileError, match="sweep.yaml: grid: sweep_plugin:SCALED.gain: 'loud' is not a "
                                                        "valid float"):
        _spec("--config", str(_write(folder, document)))


def test_a_plugin_s_file_settings_are_resolved_hashed_and_checked_like_ours(folder, tmp_path_factory, monkeypatch):
    (folder / "sweep_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    (folder / "tables").mkdir(exist_ok=True)
    (folder / "tables" / "a.txt").write_text("a table")
    document = {"data": "images", "methods": ["bicubic", "sweep_plugin:SCALED"],
                "set": {"sweep_plugin:SCALED.table": "tables/a.txt"}}
    path = _write(folder, document)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    spec = _spec("--config", str(path))
    table = str(folder / "tables" / "a.txt")
    assert base_config(spec).plugins["sweep_plugin:SCALED"].table == table
    assert yaml.safe_load(sweep_yaml(spec))["set"]["sweep_plugin:SCALED.table"] == table
    files = {job.method: job.files for job in expand(spec).jobs}
    assert files == {"bicubic": {}, "sweep_plugin:SCALED": {"sweep_plugin:SCALED.table": file_hash(Path(table))}}
    with pytest.raises(InputError, match=r"sweep_plugin:SCALED.table: no file at .*missing.txt"):
        expand(_spec("--config", str(path), "--grid", "sweep_plugin:SCALED.table=missing.txt"))


@pytest.fixture(scope="module")
def tiny_div2krk(tmp_path_factory) -> Path:
    """Two 64 px HR images degraded at x2 and x4 in the DIV2KRK layout."""
    hr = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        save_image(hr / f"{name}.png", rng.random((64, 64, 3)))
    return make_dataset(hr, tmp_path_factory.mktemp("sets") / "div2krk", scales=(2, 4))


def test_the_example_files_parse_and_expand(tiny_div2krk, capsys):
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert [p.name for p in examples] == ["ablation_disc_ratio.yaml", "div2krk.yaml"]
    for path in examples:
        settings = sweep_file.load(path)
        assert settings["data"][0].startswith(str(ROOT / "examples" / "data"))  # relative to the file
        assert main(["run", "--config", str(path), "--data", str(tiny_div2krk), "--dry-run"]) == 0
        resolved, table = capsys.readouterr().out.split("\nkey ", 1)
        resolved = yaml.safe_load(resolved)
        assert resolved["data"] == [str(tiny_div2krk.resolve())]
        jobs = Counter(line.split()[1] for line in table.splitlines()[1:] if len(line.split()) >= 7)
        if path.name == "div2krk.yaml":  # 2 images x 2 scales: every method and one estimate each
            assert jobs == {m: 4 for m in ["estimate", *resolved["methods"]]} and resolved["preset"] == "paper"
        else:  # 2 images x 3 seeds at x2; kernelgan-zssr once for every value of the grid
            values = len(resolved["grid"]["zssrgan.disc_ratio"])
            assert jobs == {"estimate": 6, "kernelgan-zssr": 6, "zssrgan-fixed": 6 * values,
                            "zssrgan-serial": 6 * values}
