"""Plugins: methods and kernel estimators from other packages. The example package is installed for
real (pip builds it and writes its entry points) into a folder of its own, and runs in real local
Ray sweeps with a real MLflow store next to built-in methods; a user's module:function is shipped
to the workers; a plugin that breaks the contract is refused with its reason."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cluster.driver import SweepError, run_sweep
from cluster.jobs import SweepSpec, expand
from cluster.runs import load_runs
from zssrgan.cli import main
from zssrgan.config import ConfigError, preset, set_value
from zssrgan.datasets import make_dataset
from zssrgan.estimators import EstimatorError, PLUGINS as ESTIMATOR_PLUGINS, run_estimator
from zssrgan.io import load_image, save_image
from zssrgan.kernels import isotropic_gaussian, kernel_shift
from zssrgan.methods import MethodError, PLUGINS as METHOD_PLUGINS, get_method, run_method
from zssrgan.methods import with_plugin_settings
from zssrgan.plugins import PluginError, checked_row

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "quick", "--set", "zssr.iters=10", "--set", "zssr.crop=24", "--device", "cpu"]

# a user's plugins, for the contract's checks and the config's sections (module ``cases``)
CASES = '''
from dataclasses import dataclass
import numpy as np
from zssrgan.config import file_field
from zssrgan.estimators import Estimator
from zssrgan.kernels import with_x4
from zssrgan.methods import Method
from zssrgan.results import KernelEstimate, MethodResult

NOT_CALLABLE = 3

def nearest(lr, scale, cfg, kernels=None, estimate=None, callback=None):
    """nearest-neighbour upscaling"""
    return MethodResult(sr=np.repeat(np.repeat(lr, scale, 0), scale, 1), kernel=None)

def too_few(lr, scale):
    return None

def extra_required(lr, scale, cfg, strength, kernels=None, estimate=None, callback=None):
    return None

def returns_int(lr, scale, cfg, kernels=None, estimate=None, callback=None) -> int:
    return 0

def wrong_shape(lr, scale, cfg, kernels=None, estimate=None, callback=None):
    return MethodResult(sr=lr, kernel=None)

@dataclass
class Gain:
    gain: float = 1.0
    note: str = ""

def scaled(lr, scale, cfg, kernels=None, estimate=None, callback=None, settings=None):
    return MethodResult(sr=np.clip(settings.gain * np.repeat(np.repeat(lr, scale, 0), scale, 1), 0, 1), kernel=None)

SCALED = Method(scaled, "nearest-neighbour times a gain", settings=Gain)
NO_SETTINGS_KEYWORD = Method(nearest, "settings it cannot receive", settings=Gain)

@dataclass
class ListSettings:
    sizes: list = None

LIST_SETTINGS = Method(scaled, "settings the command line cannot set", settings=ListSettings)

@dataclass
class NumberFile:
    size: float = file_field()

NUMBER_FILE = Method(scaled, "a number marked as a file", settings=NumberFile)

def box(lr, scale, cfg, callback=None, settings=None):
    side = settings.side
    return KernelEstimate(with_x4(np.full((side, side), 1.0 / side ** 2)), "box")

@dataclass
class Side:
    side: int = 3

BOX = Estimator(box, "a box kernel", settings=Side)

def only_x2(lr, scale, cfg, callback=None):
    return KernelEstimate({2: np.full((3, 3), 1 / 9)}, "only-x2")
'''

# a user's module next to their data: found on the driver's path only, shipped to the workers
USER_MODULE = '''
import numpy as np
from zssrgan.results import MethodResult

def nearest(lr, scale, cfg, kernels=None, estimate=None, callback=None):
    """nearest-neighbour upscaling (a user's module)"""
    return MethodResult(sr=np.repeat(np.repeat(lr, scale, 0), scale, 1).astype(np.float32), kernel=None)
'''


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Module ``cases`` (and ``broken_plugin``, which fails to import) on this process's path."""
    folder = tmp_path_factory.mktemp("cases")
    (folder / "cases.py").write_text(CASES)
    (folder / "broken_plugin.py").write_text("raise RuntimeError('the plugin needs a licence file')\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield folder


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """examples/plugin installed by pip (its wheel built, its dist-info with the entry points
    written) into a folder of its own, so the test environment stays as it is."""
    root = tmp_path_factory.mktemp("example-plugin")
    source = shutil.copytree(ROOT / "examples" / "plugin", root / "source")  # the build writes beside its source
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(root / "site"), str(source)], check=True, timeout=600)
    return root / "site"


@pytest.fixture
def installed(example_site, monkeypatch) -> Path:
    """The example plugin installed for this process and for the Ray workers a sweep starts."""
    monkeypatch.syspath_prepend(str(example_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(example_site), os.environ.get("PYTHONPATH")])))
    return example_site


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A 40x40 LR image with ground truth and true kernel (DIV2KRK layout)."""
    hr = tmp_path_factory.mktemp("hr")
    save_image(hr / "baby.png", load_image(ROOT / "benchmarks/data/classic/baby.png")[:80, :80])
    return make_dataset(hr, tmp_path_factory.mktemp("sets") / "div2krk", scales=(2,))


def test_every_built_in_row_fits_the_contract_plugins_are_held_to():
    for kind in (METHOD_PLUGINS, ESTIMATOR_PLUGINS):
        for name, row in kind.table.items():
            assert checked_row(kind, name, row, "built-in") == row


@pytest.mark.parametrize("name, error, words", [
    ("nosuch_plugin_module:fn", PluginError, "cannot import module 'nosuch_plugin_module': ModuleNotFoundError.*"
                                             r"\(is it on the Python path, or in the current folder\?\)"),
    ("broken_plugin:fn", PluginError, "cannot import module 'broken_plugin': RuntimeError: the plugin needs a licence"),
    ("cases:nope", PluginError, r"module 'cases' \(.*cases.py\) has no attribute 'nope'"),
    ("cases:", PluginError, "expected a module:function reference, e.g. mymodule:my_method"),
    ("cases:NOT_CALLABLE", PluginError, "is a int, neither a function nor a Method"),
    ("cases:too_few", PluginError, r"too_few\(lr, scale\) does not fit the contract fn\(lr, scale, cfg, kernels=None, "
                                   r"estimate=None, callback=None\) -> MethodResult: too many positional arguments"),
    ("cases:extra_required", PluginError, "missing a required argument: 'strength'"),
    ("cases:returns_int", PluginError, "annotated to return int; the contract: fn"),
    ("cases:NO_SETTINGS_KEYWORD", PluginError, r"callback=None, settings=None\) -> MethodResult: got an unexpected "
                                               "keyword argument 'settings'"),
    ("cases:LIST_SETTINGS", PluginError, "settings ListSettings has fields of types the command line cannot set: "
                                         "sizes"),
    ("cases:NUMBER_FILE", PluginError, "settings NumberFile marks fields that are not str as files: size"),
    ("nope", MethodError, "unknown method 'nope'; choose one of: bicubic, .*, or a plugin's module:function"),
])
def test_a_plugin_that_cannot_serve_is_refused_with_its_reason(cases, name, error, words):
    with pytest.raises(error, match=words):
        get_method(name)


def test_a_result_that_breaks_the_contract_fails_its_job_with_the_reason(cases):
    lr = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(MethodError, match=r"'cases:wrong_shape' returned an SR image of shape \(8, 8, 3\); .* 16x16x3"):
        run_method("cases:wrong_shape", lr, 2, preset("quick"))
    with pytest.raises(EstimatorError, match=r"'cases:only_x2' returned kernels for \[2\]; .*scales 2 and 4"):
        run_estimator(lr, 2, set_value(preset("quick"), "estimator", "cases:only_x2"))


def test_a_module_in_the_current_folder_is_found_without_being_on_the_path(tmp_path, monkeypatch):
    (tmp_path / "here_plugin.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sr = run_method("here_plugin:nearest", np.ones((4, 4, 3), np.float32), 2, preset("quick")).sr
    assert sr.shape == (8, 8, 3)


def test_plugin_settings_are_config_keys_of_their_own_read_only_by_the_plugin(cases, tmp_path):
    images = tmp_path / "images"
    for name, value in (("a", 0.2), ("b", 0.4)):
        save_image(images / f"{name}.png", np.full((24, 24, 3), value))
    spec = SweepSpec([str(images)], ["bicubic", "cases:SCALED", "kernelgan-zssr"], overrides=["cases:SCALED.note=x"],
                     grid={"cases:SCALED.gain": ["0.5", "2"], "estimator": ["kernelgan", "cases:BOX"],
                           "cases:BOX.side": ["3", "5"]})
    sweep = expand(spec)
    jobs = {kind: [j for j in sweep.jobs if (j.method, j.estimator) == kind] for kind in
            [("bicubic", ""), ("cases:SCALED", ""), ("estimate", "kernelgan"), ("estimate", "cases:BOX")]}
    # a grid over a plugin's keys runs the plugin per point and every other job once
    assert {kind: len(found) for kind, found in jobs.items()} == {
        ("bicubic", ""): 2, ("cases:SCALED", ""): 2 * 2, ("estimate", "kernelgan"): 2, ("estimate", "cases:BOX"): 2 * 2}
    assert {j.grid["cases:SCALED.gain"] for j in jobs["cases:SCALED", ""]} == {0.5, 2.0}  # parsed as the field's type
    assert all(j.cfg.plugins["cases:SCALED"].note == "x" for j in sweep.jobs)
    assert {j.cfg.plugins["cases:BOX"].side for j in jobs["estimate", "cases:BOX"]} == {3, 5}
    assert [j.grid for j in jobs["bicubic", ""]] == [{}, {}]
    # adding a plugin to a sweep leaves the keys of the built-in jobs alone
    plain = expand(SweepSpec([str(images)], ["bicubic"]))
    assert {j.key for j in jobs["bicubic", ""]} == {j.key for j in plain.jobs}
    with pytest.raises(ConfigError, match="unknown config key 'cases:SCALED.gian'; valid keys: .*cases:SCALED.gain"):
        expand(SweepSpec([str(images)], ["cases:SCALED"], overrides=["cases:SCALED.gian=2"]))
    with pytest.raises(ConfigError, match="cases:SCALED.gain: 'loud' is not a valid float"):
        expand(SweepSpec([str(images)], ["cases:SCALED"], grid={"cases:SCALED.gain": ["loud"]}))


def test_a_plugin_method_receives_its_settings(cases):
    lr = np.full((4, 4, 3), 0.25, np.float32)
    cfg = set_value(with_plugin_settings(preset("quick"), ["cases:SCALED"]), "cases:SCALED.gain", 3.0)
    assert run_method("cases:SCALED", lr, 2, cfg).sr.mean() == pytest.approx(0.75)
    defaults = run_method("cases:SCALED", lr, 2, preset("quick"))  # a config without the section: the defaults
    assert defaults.sr.mean() == pytest.approx(0.25)


def test_the_listings_and_sr_take_installed_plugins(installed, tmp_path, capsys):
    assert main(["methods"]) == 0 and main(["estimators"]) == 0
    out = capsys.readouterr().out
    assert "sharpened-bicubic  bicubic interpolation, then an unsharp mask (example plugin) [plugin: " \
           "zssrgan-example-plugin 0.1.0]" in out
    assert "fixed-gaussian" in out and out.index("bicubic ") < out.index("sharpened-bicubic")
    lr = np.random.default_rng(0).random((16, 16, 3))
    save_image(tmp_path / "lr.png", lr)
    for strength in ("0", "2"):
        assert main(["sr", str(tmp_path / "lr.png"), "--method", "sharpened-bicubic", "--out",
                     str(tmp_path / f"sr{strength}.png"), "--set", f"sharpened-bicubic.strength={strength}"]) == 0
    assert main(["sr", str(tmp_path / "lr.png"), "--method", "bicubic", "--out", str(tmp_path / "bicubic.png")]) == 0
    bicubic, soft, sharp = (load_image(tmp_path / f"{n}.png") for n in ("bicubic", "sr0", "sr2"))
    np.testing.assert_array_equal(soft, bicubic)  # strength 0 adds no detail
    assert np.abs(sharp - bicubic).mean() > 0.01


def test_plugins_run_in_a_sweep_next_to_built_in_methods_and_make_the_report(installed, dataset, sqlite_uri,
                                                                              tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_nearest.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(mine))  # on the driver's path only: the sweep ships it to the workers
    methods = ["bicubic", "sharpened-bicubic", "my_nearest:nearest", "kernelgan-zssr"]
    argv = ["run", "--data", str(dataset), "--methods", ",".join(methods), "--estimator", "fixed-gaussian",
            "--set", "fixed-gaussian.sigma=0.8", "--grid", "sharpened-bicubic.strength=0.3,1.5",
            "--tracking-uri", sqlite_uri, "--experiment", "plugins", *TINY]
    assert main(argv) == 0
    runs = load_runs(sqlite_uri, "plugins")
    assert set(runs.status) == {"FINISHED"}
    counts = runs.groupby(["tags.zssrgan.method", runs["tags.zssrgan.estimator"].fillna("")]).size().to_dict()
    assert counts == {("bicubic", ""): 1, ("sharpened-bicubic", ""): 2, ("my_nearest:nearest", ""): 1,
                      ("estimate", "fixed-gaussian"): 1, ("kernelgan-zssr", "fixed-gaussian"): 1}
    assert (runs["params.cfg.fixed-gaussian.sigma"] == "0.8").all()  # logged with every run, like ours
    sharpened = runs[runs["tags.zssrgan.method"] == "sharpened-bicubic"]
    assert set(sharpened["tags.zssrgan.grid"]) == {"sharpened-bicubic.strength=0.3", "sharpened-bicubic.strength=1.5"}
    assert set(sharpened["params.cfg.sharpened-bicubic.strength"]) == {"0.3", "1.5"}
    assert sharpened["metrics.sharpen.detail_rms"].gt(0).all()  # the callback's values, as curves
    # the settings reached the workers: the estimate is the Gaussian of sigma 0.8, and the two strengths differ
    client = MlflowClient(sqlite_uri)
    for run_id in runs[runs["tags.zssrgan.method"] == "estimate"].run_id:
        kernel = np.load(client.download_artifacts(run_id, "kernel.npy"), allow_pickle=False)
        np.testing.assert_allclose(kernel, kernel_shift(isotropic_gaussian(13, 0.8), 2), atol=1e-9)
    assert abs(sharpened["metrics.psnr_y"].diff().iloc[-1]) > 0.1
    assert runs.loc[runs["tags.zssrgan.method"] == "my_nearest:nearest", "metrics.psnr_y"].between(10, 60).all()

    out = tmp_path / "report"
    assert main(["report", "--experiment", "plugins", "--tracking-uri", sqlite_uri, "--out", str(out)]) == 0
    table = pd.read_csv(out / "tables" / "methods.csv").set_index("method")
    assert list(table.index) == ["bicubic", "kernelgan-zssr [fixed-gaussian]", "estimate [fixed-gaussian]",
                                 "my_nearest:nearest", "sharpened-bicubic"]  # built-ins in table order, plugins last
    assert table["psnr_y_mean"].drop("estimate [fixed-gaussian]").between(10, 60).all()
    assert "sharpened-bicubic" in (out / "index.html").read_text()


def test_workers_that_cannot_load_a_plugin_stop_the_sweep_before_any_job(example_site, dataset, sqlite_uri,
                                                                         monkeypatch):
    monkeypatch.syspath_prepend(str(example_site))  # installed where the driver runs, not where the workers do
    spec = SweepSpec([str(dataset)], ["bicubic", "sharpened-bicubic"], tracking_uri=sqlite_uri, experiment="missing",
                     progress=False)
    with pytest.raises(SweepError, match=r"the workers cannot load the plugins this sweep uses \(checked on .*\): "
                                         r"unknown method 'sharpened-bicubic'.*must be installed on every node"):
        run_sweep(spec)
    client = MlflowClient(sqlite_uri)
    runs = client.search_runs([client.get_experiment_by_name("missing").experiment_id])
    assert [(r.data.tags.get("zssrgan.kind"), r.info.status) for r in runs] == [("sweep", "FAILED")]  # no job started
