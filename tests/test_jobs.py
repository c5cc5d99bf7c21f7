"""Sweep expansion and job keys: deterministic, content-addressed, one kernel estimate per estimator
config, and keys that hold only what a job reads."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cluster.jobs import SweepSpec, check_files, expand
from zssrgan.config import ConfigError
from zssrgan.datasets import DatasetError, make_dataset
from zssrgan.errors import InputError
from zssrgan.io import save_image
from zssrgan.estimators import EstimatorError
from zssrgan.methods import METHODS, MethodError


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        save_image(folder / f"{name}.png", rng.random((24, 24, 3)))
    return folder


def test_expansion_is_the_product_of_images_methods_scales_seeds_and_grid(images):
    sweep = expand(SweepSpec([str(images)], ["zssr"], scales=[2, 4], seeds=[0, 1],
                             grid={"zssr.iters": ["10", "20", "30"]}))
    assert len(sweep.jobs) == 2 * 1 * 2 * 2 * 3
    assert len({j.key for j in sweep.jobs}) == len(sweep.jobs)
    assert Counter(j.grid["zssr.iters"] for j in sweep.jobs) == {10: 8, 20: 8, 30: 8}  # parsed as int
    assert {j.cfg.seed for j in sweep.jobs} == {0, 1} and all(j.cfg.seed == j.seed for j in sweep.jobs)
    assert all(j.sweep_id == sweep.sweep_id and j.dataset == "images" for j in sweep.jobs)


def test_keys_hash_the_image_content_not_its_name(images, tmp_path):
    spec = SweepSpec([str(images)], ["bicubic"])
    first = {j.item.name: j.key for j in expand(spec).jobs}
    assert first == {j.item.name: j.key for j in expand(spec).jobs}  # deterministic
    copy = tmp_path / "copy"
    shutil.copytree(images, copy)
    (copy / "a.png").rename(copy / "renamed.png")
    save_image(copy / "b.png", np.zeros((24, 24, 3)))
    second = {j.item.name: j.key for j in expand(SweepSpec([str(copy)], ["bicubic"])).jobs}
    assert second["renamed"] == first["a"] and second["b"] != first["b"]
    zssr = SweepSpec([str(images)], ["zssr"])
    assert expand(SweepSpec([str(images)], ["zssr"], overrides=["zssr.lr=0.01"])).sweep_id != expand(zssr).sweep_id


def test_the_same_image_given_twice_runs_once(images):
    sweep = expand(SweepSpec([str(images), str(images / "a.png")], ["bicubic"]))
    assert len(sweep.jobs) == 2 and any("same inputs" in reason for reason in sweep.skipped)


def test_an_estimate_runs_once_per_image_scale_seed_and_estimator_config(images):
    method = "zssrgan-fixed"
    sweep = expand(SweepSpec([str(images)], ["bicubic", method], scales=[2],
                             grid={"zssrgan.disc_ratio": ["0.1", "0.5"], "kernelgan.iters": ["5", "10"]}))
    estimates = [j for j in sweep.jobs if j.kind == "estimate"]
    users = [j for j in sweep.jobs if j.method == method]
    assert len(estimates) == 2 * 2  # images x kernelgan.iters; disc_ratio does not make new estimates
    assert all(set(e.grid) == {"kernelgan.iters"} and e.estimator == "kernelgan" and e.discriminator
               for e in estimates)
    assert len(users) == 2 * 2 * 2 and all(j.estimator == "kernelgan" for j in users)
    assert sweep.jobs[:len(estimates)] == estimates  # dispatched first
    by_key = {e.key: e for e in estimates}
    for job in users:
        estimate = by_key[job.estimate_key]
        assert estimate.item.lr_path == job.item.lr_path and estimate.cfg.kernelgan == job.cfg.kernelgan
    bicubic = [j for j in sweep.jobs if j.method == "bicubic"]
    assert len(bicubic) == 2 and all(j.estimate_key is None and j.grid == {} and not j.estimator for j in bicubic)


def test_a_grid_over_a_key_a_method_does_not_read_runs_it_once(images):
    sweep = expand(SweepSpec([str(images)], ["zssr", "kernelgan-zssr", "zssrgan-fixed"],
                             grid={"zssrgan.disc_ratio": ["0.2", "0.8"]}))
    count = Counter(j.method for j in sweep.jobs)
    assert count == {"estimate": 2, "zssr": 2, "kernelgan-zssr": 2, "zssrgan-fixed": 4}
    assert not sweep.skipped  # sharing a job across grid points is not a duplicate to report
    # the tag holds the part of the ablation point a job reads: none for the jobs shared by both values
    assert {j.method for j in sweep.jobs if j.grid == {}} == {"estimate", "zssr", "kernelgan-zssr"}
    assert Counter(j.grid["zssrgan.disc_ratio"] for j in sweep.jobs if j.grid) == {0.2: 2, 0.8: 2}


def test_estimators_are_a_grid_key_and_e2e_is_not_applicable_without_a_generator(images):
    sweep = expand(SweepSpec([str(images)], ["zssr", "kernelgan-zssr", "zssrgan-e2e"],
                             grid={"estimator": ["kernelgan", "cross-scale"]}))
    count = Counter((j.method, j.estimator) for j in sweep.jobs)
    assert count == {("estimate", "kernelgan"): 2, ("estimate", "cross-scale"): 2, ("zssr", ""): 2,
                     ("kernelgan-zssr", "kernelgan"): 2, ("kernelgan-zssr", "cross-scale"): 2,
                     ("zssrgan-e2e", "kernelgan"): 2}
    assert len(sweep.skipped) == 2 and all("not applicable" in r and "cross-scale" in r for r in sweep.skipped)
    by_key = {j.key: j for j in sweep.jobs}
    assert all(by_key[j.estimate_key].estimator == j.estimator for j in sweep.jobs if j.estimate_key)
    assert not any(j.discriminator for j in sweep.jobs)  # no method here needs one


def test_estimate_alone_records_estimates(images):
    sweep = expand(SweepSpec([str(images)], ["estimate"], scales=[2, 4], overrides=["estimator=cross-scale"]))
    assert [(j.kind, j.estimator) for j in sweep.jobs] == [("estimate", "cross-scale")] * 4


def test_oracle_is_skipped_where_nothing_is_known_and_runs_on_a_bicubic_protocol_set(images, tmp_path):
    oracle = "zssr-oracle"
    assert METHODS[oracle].needs_kernel
    real = expand(SweepSpec([str(images)], [oracle]))
    assert not real.jobs and len(real.skipped) == 2 and "no true kernel" in real.skipped[0]
    bicubic_set = make_dataset(images, tmp_path / "bicubic", protocol="bicubic", scales=(2,))
    assert len(expand(SweepSpec([str(bicubic_set)], [oracle])).jobs) == 2
    # gaussian8's x4 kernel is one blur, not two x2 steps: the gradual x4 oracle has no x2 kernel
    gaussian8 = expand(SweepSpec([str(make_dataset(images, tmp_path / "g8", "gaussian8", (2, 4)))], [oracle],
                                 scales=[2, 4]))
    assert [(j.scale, j.item.kernel_width) for j in gaussian8.jobs][:2] == [(2, 0.8), (2, 0.9142857143)]
    assert len(gaussian8.jobs) == 16 and len(gaussian8.skipped) == 16
    assert "a_sig1.80 x4: the gaussian8 x4 kernel is not two x2 steps" in gaussian8.skipped[0]


def test_a_file_a_config_key_names_is_sent_as_an_absolute_path_and_keys_the_job_by_its_content(
        images, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "blur.npz").write_bytes(b"model one")
    monkeypatch.chdir(tmp_path)

    def estimate_jobs(value: str) -> list:
        spec = SweepSpec([str(images)], ["kernelgan-zssr"], overrides=["estimator=auto", f"auto.blur_model={value}"])
        return [j for j in expand(spec).jobs if j.kind == "estimate"]

    first = estimate_jobs("models/blur.npz")
    model = str(tmp_path / "models" / "blur.npz")
    assert {j.cfg.auto.blur_model for j in first} == {model}  # workers may run in another folder
    assert all(set(j.files) == {"auto.blur_model"} for j in first)
    assert [j.key for j in estimate_jobs(model)] == [j.key for j in first]  # the same file, however named
    (tmp_path / "models" / "blur.npz").write_bytes(b"model two")  # retrained in place: other results
    changed = estimate_jobs("models/blur.npz")
    assert not {j.key for j in changed} & {j.key for j in first}
    assert {j.files["auto.blur_model"] for j in changed}.isdisjoint({j.files["auto.blur_model"] for j in first})
    (tmp_path / "moved").mkdir()
    (tmp_path / "models" / "blur.npz").rename(tmp_path / "moved" / "blur.npz")  # the same content elsewhere
    assert [j.key for j in estimate_jobs("moved/blur.npz")] == [j.key for j in changed]
    with pytest.raises(InputError, match="the file at .*blur.npz on this node \\(missing\\) is not the one"):
        check_files(changed[0])  # what a worker checks before it runs the job
    (tmp_path / "models" / "blur.npz").write_bytes(b"model one")
    with pytest.raises(InputError, match="the file at .*blur.npz on this node \\(sha256 [0-9a-f]{12}...\\) is not"):
        check_files(changed[0])
    check_files(first[0])
    # a job that does not read the key keeps its key whatever the file, and records none
    bicubic = [expand(SweepSpec([str(images)], ["bicubic"], overrides=[f"auto.blur_model={value}"])).jobs
               for value in ("", "models/blur.npz")]
    assert [j.key for j in bicubic[0]] == [j.key for j in bicubic[1]] and not any(j.files for j in bicubic[1])
    with pytest.raises(InputError, match=r"fkp.prior: no file at .*elsewhere.npz \(a relative path is taken from"):
        expand(SweepSpec([str(images)], ["kernelgan-zssr"], overrides=["estimator=kernelgan-fkp",
                                                                        "fkp.prior=elsewhere.npz"]))


@pytest.mark.parametrize("change, error, words", [
    ({"methods": ["nope"]}, MethodError, "choose one of"),
    ({"overrides": ["estimator=nope"]}, EstimatorError, "choose one of: kernelgan, kernelgan-fkp, cross-scale"),
    ({"grid": {"zssrgan.disc_raito": ["0.1"]}}, ConfigError, "valid keys"),
    ({"grid": {"zssr.iters": ["ten"]}}, ConfigError, "not a valid int"),
    ({"scales": [3]}, ValueError, "scales must be 2 or 4"),
    ({"data": ["/nonexistent/images"]}, DatasetError, "does not exist"),
])
def test_bad_sweeps_are_refused_with_a_clear_reason(images, change, error, words):
    spec = SweepSpec([str(images)], ["bicubic"])
    for name, value in change.items():
        setattr(spec, name, value)
    with pytest.raises(error, match=words):
        expand(spec)
