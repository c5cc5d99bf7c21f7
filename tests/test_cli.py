"""The command line itself: which errors are one line and which show their traceback, and the
commands that take paths, given relative paths (run, report and demo: in their own test files)."""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from zssrgan.cli import COMMANDS, EXIT_UNEXPECTED, EXIT_USER_ERROR, is_user_error, main
from zssrgan.config import ConfigError
from zssrgan.io import load_image, load_kernel, save_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def photo(tmp_path, monkeypatch) -> str:
    """A 64 px photo as ``hr/baby.png``, relative to the current folder (``tmp_path``)."""
    monkeypatch.chdir(tmp_path)
    save_image(tmp_path / "hr" / "baby.png", load_image(ROOT / "benchmarks/data/classic/baby.png")[:64, :64])
    return "hr/baby.png"


def test_a_users_mistake_is_one_line_and_debug_adds_the_traceback(photo, capsys):
    assert main(["sr", "missing.png", "--method", "bicubic", "--out", "sr.png"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == "zssrgan sr: error: missing.png: no such image file\n"
    assert main(["sr", photo, "--method", "bicubic", "--out", "sr.png", "--set", "zssr.nope=1"]) == EXIT_USER_ERROR
    assert "Traceback" not in capsys.readouterr().err
    for argv in (["--debug", "sr", "missing.png", "--method", "bicubic", "--out", "sr.png"],
                 ["sr", "missing.png", "--method", "bicubic", "--out", "sr.png", "--debug"]):
        assert main(argv) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "ImageError" in err
        assert err.endswith("zssrgan sr: error: missing.png: no such image file\n")


@pytest.mark.parametrize("argv, words", [
    (["kernel", "--set", "kernelgan.input_crop=26"], "kernelgan.input_crop must be at least 27, got 26"),
    (["kernel", "--estimator", "kernelgan-fkp", "--set", "fkp.input_crop=8"], "fkp.input_crop must be at least 31"),
    (["sr", "--method", "zssr", "--set", "zssr.depth=1"], "zssr.depth must be at least 2, got 1"),
    (["sr", "--method", "zssr", "--set", "zssr.crop=4"], "zssr.crop must be at least 8 at x2"),
])
def test_a_setting_the_code_cannot_run_with_is_named_in_one_line(photo, capsys, argv, words):
    out = "k.npy" if argv[0] == "kernel" else "sr.png"
    assert main([argv[0], photo, "--out", out, "--preset", "quick", *argv[1:]]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"zssrgan {argv[0]}: error: {words}") and err.count("\n") == 1  # one line, no traceback


def test_an_unexpected_error_keeps_its_traceback_and_its_own_exit_status(monkeypatch, capsys):
    def broken(args):
        return {}["a bug"]

    monkeypatch.setitem(COMMANDS, "broken", types.SimpleNamespace(help="fails", add_arguments=lambda p: None,
                                                                  run=broken))
    assert main(["broken"]) == EXIT_UNEXPECTED
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'a bug'" in err
    assert "zssrgan broken: unexpected error KeyError" in err
    # a CUDA out-of-memory or a torch error is a RuntimeError, not the user's mistake; ours are
    assert not is_user_error(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not is_user_error(RuntimeError("an assertion inside a library"))
    assert is_user_error(ConfigError("unknown key")) and is_user_error(FileNotFoundError(2, "gone", "x.png"))


def test_make_dataset_sr_and_kernel_take_relative_paths(photo, tmp_path, capsys):
    assert main(["make-dataset", "--from", "hr", "--out", "sets/div2krk", "--scales", "2"]) == 0
    lr = "sets/div2krk/lr_x2/im_baby.png"
    assert (tmp_path / lr).is_file() and (tmp_path / "sets/div2krk/gt_k_x2/kernel_baby.mat").is_file()
    assert main(["sr", lr, "--method", "bicubic", "--out", "out/sr.png"]) == 0
    assert load_image(tmp_path / "out" / "sr.png").shape == (64, 64, 3)
    kernel = "sets/div2krk/gt_k_x2/kernel_baby.mat"  # a true kernel given to a method that would ignore it
    assert main(["sr", lr, "--method", "zssr", "--kernel", kernel, "--out", "out/z.png"]) == EXIT_USER_ERROR
    assert "zssr does not take a true kernel (it would be ignored); --kernel is for: zssr-oracle" in capsys.readouterr().err
    assert main(["kernel", photo, "--estimator", "cross-scale", "--out", "out/k.npy", "--device", "cpu"]) == 0
    kernel = load_kernel(tmp_path / "out" / "k.npy")
    assert kernel.ndim == 2 and abs(kernel.sum() - 1.0) < 0.01
    assert "out/k.npy" in capsys.readouterr().out


def test_run_warns_before_any_job_when_the_paper_preset_will_train_on_a_cpu(photo, capsys):
    dry = ["run", "--data", "hr", "--dry-run"]
    assert main([*dry, "--methods", "bicubic,zssr", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "one ZSSR run takes tens of minutes; add --preset quick" in captured.err
    assert "2 jobs" in captured.out
    for quiet in (["--methods", "zssr", "--device", "cpu", "--preset", "quick"],  # short settings
                  ["--methods", "bicubic", "--device", "cpu"],  # nothing trains
                  ["--methods", "zssr", "--address", "auto"]):  # the cluster's nodes decide the device
        assert main([*dry, *quiet]) == 0
        assert "warning" not in capsys.readouterr().err
    assert main([*dry, "--methods", "zssr", "--address", "auto", "--gpus-per-job", "0"]) == 0
    assert "add --preset quick" in capsys.readouterr().err  # no GPU share: CPU wherever it runs
