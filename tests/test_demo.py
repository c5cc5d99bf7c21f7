"""``zssrgan demo`` end to end at a reduced size: bundled photos -> dataset -> every method on a
local Ray -> local MLflow store -> report."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zssrgan.cli import main
from zssrgan.cli.demo_cmd import PHOTOS, write_photos
from zssrgan.io import load_image
from zssrgan.methods import METHODS

TINY = ["--set", "zssr.iters=10", "--set", "zssr.crop=24", "--set", "kernelgan.iters=20", "--set", "strict_estimates=false",
        "--set", "kernelgan.n_crop_positions=20", "--set", "kernelgan.input_crop=32", "--set", "kernelgan.shave=0",
        "--device", "cpu"]


def test_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo"
    assert main(["demo", "--out", "demo", "--images", "2", "--size", "64", *TINY]) == 0  # a relative --out
    printed = capsys.readouterr().out
    index = out / "report" / "index.html"
    assert f"report: {index}" in printed
    assert f"zssrgan ui --tracking-uri sqlite:///{out / 'mlflow.db'}, then open http://127.0.0.1:5000/#/" in printed
    table = pd.read_csv(out / "report" / "tables" / "methods.csv")
    labels = [f"{m} [kernelgan]" if METHODS[m].estimate else m for m in METHODS]
    assert list(table["method"]) == [*labels, "estimate [kernelgan]"]  # every method, one shared estimate per image
    assert (table["n"] == 2).all()
    assert table.set_index("method").loc[labels, "psnr_y_mean"].between(10, 60).all()
    page = index.read_text(encoding="utf-8")
    for name in ("losses", "psnr_vs_time", "crops_astronaut_x2", "kernels_chelsea_x2"):
        assert f"figures/{name}.png" in page and (out / "report" / "figures" / f"{name}.png").stat().st_size > 0
    assert not (out / "report" / "tables" / "ablation.csv").exists()


def test_bundled_photos_are_offline_and_cropped(tmp_path):
    folder = write_photos(tmp_path, len(PHOTOS), 96)
    images = [load_image(folder / f"{name}.png") for name in PHOTOS]
    assert all(img.shape == (96, 96, 3) and np.ptp(img) > 0.3 for img in images)  # textured colour crops


@pytest.mark.parametrize("argv, message", [
    (["--size", "96"], "--size 96 gives a 48 px LR input, but KernelGAN needs 84 px"),
    (["--images", "9"], "--images must be 1 to 6"),
])
def test_demo_refuses_bad_sizes(tmp_path, capsys, argv, message):
    try:
        code = main(["demo", "--out", str(tmp_path / "d"), *argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
