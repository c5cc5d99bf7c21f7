"""The comparison report, built from real sweeps (real Ray, real MLflow sqlite store, tiny budgets)."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import yaml
from mlflow import MlflowClient
from PIL import Image

from cluster.runs import load_runs
from zssrgan.cli import main
from zssrgan.cli.demo_cmd import write_photos
from zssrgan.cli.report_cmd import mlflow_access
from zssrgan.datasets import make_dataset
from zssrgan.report import build_report
from zssrgan.report.ablation import ablation_rows, paired_differences
from zssrgan.report.tables import prepare

METHODS = ["bicubic", "zssr", "kernelgan-zssr"]
LABELS = ["bicubic", "zssr", "kernelgan-zssr [kernelgan]"]  # report rows name the estimator behind a kernel
# tiny budgets: 32 px LR inputs, so KernelGAN crops 32 px without shaving
TINY = ["--preset", "quick", "--set", "zssr.iters=10", "--set", "zssr.crop=24", "--set", "kernelgan.iters=20",
        "--set", "strict_estimates=false",
        "--set", "kernelgan.n_crop_positions=20", "--set", "kernelgan.input_crop=32", "--set", "kernelgan.shave=0",
        "--device", "cpu"]
IMAGES = ["astronaut", "chelsea"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Three sweeps in one sqlite store: on two 64 px photos, experiment ``plain`` (bicubic, ZSSR,
    KernelGAN+ZSSR) and ``grid``, run from a sweep file (bicubic and ZSSR over ``zssr.iters=5,10``:
    bicubic reads no ZSSR setting, so it runs once for both); on one, experiment ``protocols``
    (bicubic and ZSSR on its gaussian8 and bicubic degradations)."""
    root = tmp_path_factory.mktemp("report")
    photos = write_photos(root / "photos", 2, 64)
    data = make_dataset(photos, root / "data", scales=(2,))
    one = write_photos(root / "one", 1, 64)
    protocols = [make_dataset(one, root / name, name, scales=(2,)) for name in ("gaussian8", "bicubic")]
    uri = f"sqlite:///{root / 'mlflow.db'}"
    grid_sweep = {"data": "data", "methods": ["bicubic", "zssr"], "preset": "quick", "experiment": "grid",
                  "tracking_uri": uri, "device": "cpu", "grid": {"zssr.iters": [5, 10]},
                  "set": dict(value.split("=") for flag, value in zip(TINY, TINY[1:]) if flag == "--set")}
    (root / "grid.yaml").write_text(yaml.safe_dump(grid_sweep), encoding="utf-8")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")  # one Ray, three sweeps
    try:
        assert main(["run", "--data", str(data), "--tracking-uri", uri, *TINY, "--methods", ",".join(METHODS),
                     "--experiment", "plain"]) == 0
        assert main(["run", "--config", str(root / "grid.yaml")]) == 0
        assert main(["run", *(a for d in protocols for a in ("--data", str(d))), "--tracking-uri", uri, *TINY,
                     "--methods", "bicubic,zssr", "--experiment", "protocols"]) == 0
    finally:
        ray.shutdown()
    return uri


def _png_ok(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 50


def _links(index: Path) -> set[str]:
    return set(re.findall(r'(?:href|src)="([^"#]+)"', index.read_text(encoding="utf-8")))


def test_report_of_a_real_sweep(store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", str(out)]) == 0
    index = out / "index.html"
    assert str(index.resolve()) in capsys.readouterr().out

    methods = pd.read_csv(out / "tables" / "methods.csv")
    assert list(methods["method"]) == [*LABELS, "estimate [kernelgan]"]  # the table's order, estimate last
    assert (methods["n"] == 2).all()
    learned = methods.set_index("method").loc[LABELS]
    assert learned["psnr_y_mean"].between(10, 60).all() and learned["psnr_y_std"].notna().all()
    assert methods.set_index("method").loc["kernelgan-zssr [kernelgan]", "kernel_error_mean"] > 0
    per_image = pd.read_csv(out / "tables" / "per_image.csv")
    assert len(per_image) == 2 * 4 and set(per_image["image"]) == set(IMAGES)
    markdown = (out / "tables" / "methods.md").read_text()
    assert "PSNR-Y (dB)" in markdown and " ± " in markdown
    for method in LABELS:
        assert f"| {method} | 2 | 2 |" in markdown
    assert not (out / "tables" / "ablation.csv").exists()

    figures = out / "figures"
    expected = [f"{kind}_{image}_x2.png" for kind in ("kernels", "crops") for image in IMAGES]
    expected += ["psnr_vs_time.png", "psnr_vs_sharpness.png"]
    for name in expected:
        _png_ok(figures / name)
    links = _links(index)
    for name in expected:
        assert f"figures/{name}" in links
    for table in ("methods", "per_image"):
        for fmt in ("csv", "md", "html"):
            assert f"tables/{table}.{fmt}" in links and (out / "tables" / f"{table}.{fmt}").stat().st_size > 0
    for link in links:  # offline: relative links only, all inside the report
        assert "://" not in link and (out / link).resolve().is_relative_to(out.resolve()), link
    page = index.read_text(encoding="utf-8")
    assert "no ZSSRGAN run logged loss curves" in page  # no ZSSRGAN method in this sweep: a note

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("plain").experiment_id
    parent = client.search_runs([experiment], "tags.`zssrgan.kind` = 'sweep'")[0].info.run_id
    attached = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/index.html", "report/figures", "report/tables"} <= attached


def test_grid_sweep_gives_the_ablation_tables_and_figure(store, tmp_path):
    runs = load_runs(store, "grid")
    assert Counter(runs["tags.zssrgan.method"]) == {"bicubic": 2, "zssr": 4}  # bicubic once per image
    out = tmp_path / "report"
    assert main(["report", "--experiment", "grid", "--tracking-uri", store, "--out", str(out), "--no-attach"]) == 0
    ablation = pd.read_csv(out / "tables" / "ablation.csv")
    assert list(zip(ablation["grid"], ablation["method"])) == [
        ("zssr.iters=5", "bicubic"), ("zssr.iters=10", "bicubic"), ("zssr.iters=5", "zssr"), ("zssr.iters=10", "zssr")]
    assert (ablation["n"] == 2).all()  # bicubic's two runs stand under each value
    bicubic = ablation[ablation["method"] == "bicubic"]["psnr_y_mean"]
    assert bicubic.iloc[0] == bicubic.iloc[1]
    methods = pd.read_csv(out / "tables" / "methods.csv").set_index("method")
    assert methods.loc["bicubic", "n"] == 2 and methods.loc["zssr", "n"] == 4  # pooled: each run once
    assert "grid points pooled" in (out / "tables" / "methods.md").read_text()
    _png_ok(out / "figures" / "ablation_zssr.iters.png")
    links = _links(out / "index.html")
    assert {"figures/ablation_zssr.iters.png", "tables/ablation_paired.csv"} <= links

    # the paired differences, computed here from the runs: zssr against itself at 5 iterations
    psnr = {(r["tags.zssrgan.method"], r["tags.zssrgan.image"], r["tags.zssrgan.grid"]): r["metrics.psnr_y"]
            for _, r in runs.iterrows()}
    paired = pd.read_csv(out / "tables" / "ablation_paired.csv")
    assert set(paired["method"]) == {"zssr"} and set(paired["reference"]) == {"zssr.iters=5"}
    gain = [psnr["zssr", image, "zssr.iters=10"] - psnr["zssr", image, "zssr.iters=5"] for image in IMAGES]
    _assert_paired(paired, "zssr", 10, gain)
    _assert_paired(paired, "zssr", 5, [0.0, 0.0])

    # against a reference method that does not read the key: the same bicubic run at both values
    out = tmp_path / "against_bicubic"
    assert main(["report", "--experiment", "grid", "--tracking-uri", store, "--out", str(out), "--no-attach",
                 "--reference-method", "bicubic"]) == 0
    paired = pd.read_csv(out / "tables" / "ablation_paired.csv")
    assert set(paired["method"]) == {"zssr"} and set(paired["reference"]) == {"bicubic"}
    for iters in (5, 10):
        _assert_paired(paired, "zssr", iters, [psnr["zssr", image, f"zssr.iters={iters}"] - psnr["bicubic", image, ""]
                                               for image in IMAGES])
    _png_ok(out / "figures" / "ablation_zssr.iters.png")
    assert "mean ± standard error" in (out / "tables" / "ablation_paired.md").read_text()


def _assert_paired(paired: pd.DataFrame, method: str, value, differences: list[float]) -> None:
    row = paired[(paired["method"] == method) & (paired["value"].astype(str) == str(value))]
    assert len(row) == 1 and row["n"].iloc[0] == len(differences)
    assert row["mean"].iloc[0] == pytest.approx(np.mean(differences), abs=1e-9)
    if len(differences) == 1:  # one pair: no spread to estimate
        assert np.isnan(row["se"].iloc[0])
    else:
        assert row["se"].iloc[0] == pytest.approx(np.std(differences, ddof=1) / np.sqrt(len(differences)), abs=1e-9)


def test_the_sweep_file_is_attached_to_the_parent_run(store):
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("grid").experiment_id
    parent = client.search_runs([experiment], "tags.`zssrgan.kind` = 'sweep'")[0].info.run_id
    resolved = yaml.safe_load(Path(client.download_artifacts(parent, "sweep.yaml")).read_text())
    data = Path(client.get_run(parent).data.params["data"])
    assert data.name == "data" and resolved["data"] == [str(data.resolve())]  # resolved against the file's folder
    assert resolved["grid"] == {"zssr.iters": ["5", "10"]} and resolved["methods"] == ["bicubic", "zssr"]
    assert resolved["set"]["zssr.crop"] == "24" and resolved["experiment"] == "grid"


def test_runs_are_grouped_by_protocol_and_kernel_width(store, tmp_path):
    runs = load_runs(store, "protocols")
    widths = runs.loc[runs["tags.zssrgan.protocol"] == "gaussian8", "tags.zssrgan.kernel_width"]
    assert sorted(set(widths.astype(float))) == pytest.approx(list(np.linspace(0.8, 1.6, 8)), abs=1e-5)
    assert set(runs["params.noise"]) == {"0.0"}
    out = tmp_path / "report"
    assert main(["report", "--experiment", "protocols", "--tracking-uri", store, "--out", str(out), "--no-attach"]) == 0

    per_protocol = pd.read_csv(out / "tables" / "per_protocol.csv")
    assert set(zip(per_protocol["protocol"], per_protocol["method"], per_protocol["n"])) == {
        ("gaussian8", "bicubic", 8), ("gaussian8", "zssr", 8), ("bicubic", "bicubic", 1), ("bicubic", "zssr", 1)}
    assert "protocols pooled" in (out / "tables" / "methods.md").read_text()
    per_width = pd.read_csv(out / "tables" / "per_width.csv")
    assert (per_width["protocol"] == "gaussian8").all() and (per_width["n"] == 1).all()
    assert list(per_width["kernel_width"]) == [w for w in np.round(np.linspace(0.8, 1.6, 8), 3) for _ in range(2)]
    bicubic = per_width[per_width["method"] == "bicubic"].set_index("kernel_width")["psnr_y_mean"]
    assert bicubic.iloc[-1] < bicubic.iloc[0] - 1  # a wider blur leaves bicubic interpolation further off

    _png_ok(out / "figures" / "psnr_vs_width_gaussian8_x2.png")
    links = _links(out / "index.html")
    assert "figures/psnr_vs_width_gaussian8_x2.png" in links and "tables/per_width.html" in links
    covered = re.search(r"<th>protocols</th><td>([^<]*)</td>", (out / "index.html").read_text(encoding="utf-8"))
    assert sorted(covered.group(1).split(", ")) == ["bicubic", "gaussian8"]
    # a sweep of one protocol names it and has no per-protocol or per-width table
    plain = tmp_path / "plain"
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", str(plain), "--no-attach"]) == 0
    assert "(div2krk protocol)" in (plain / "tables" / "methods.md").read_text()
    assert sorted(p.name for p in (plain / "tables").glob("*.csv")) == ["methods.csv", "per_image.csv"]


def test_real_photos_and_hostile_names(store, tmp_path):
    """No ground truth (no PSNR): the PSNR figures are skipped with a note; image names from runs
    never lead files outside the report folder."""
    runs = load_runs(store, "plain")
    runs = runs.drop(columns=[c for c in runs.columns if re.match(r"metrics\.(psnr|ssim)", c)])
    runs["params.gt_path"] = None
    runs["tags.zssrgan.image"] = runs["tags.zssrgan.image"].map({"astronaut": "../../escape me", "chelsea": "/etc/x"})

    out = tmp_path / "report"
    page = build_report(runs, out, *mlflow_access(store, tmp_path / "cache")).read_text(encoding="utf-8")
    assert "PSNR-Y" not in (out / "tables" / "methods.md").read_text()
    assert "no run logged both time_total and psnr_y" in page and "no run logged both sharpness and psnr_y" in page
    pictures = sorted(p.name for p in (out / "figures").iterdir())
    assert pictures == ["crops_escape_me_x2.png", "crops_etc_x_x2.png", "kernels_escape_me_x2.png",
                        "kernels_etc_x_x2.png"]
    written = [p.resolve() for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]
    assert all(p.is_relative_to(out.resolve()) for p in written)


def test_clear_errors(store, tmp_path, capsys):
    assert main(["report", "--experiment", "nope", "--tracking-uri", store, "--out", str(tmp_path / "r")]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--sweep", "abc",
                 "--out", str(tmp_path / "r")]) == 2
    assert "no runs of sweep 'abc'" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", str(tmp_path / "mine")]) == 2
    assert "not written by zssrgan (thesis.tex)" in capsys.readouterr().err
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    # a user's folder named like one the report replaces is not deleted either
    (tmp_path / "yours" / "figures").mkdir(parents=True)
    (tmp_path / "yours" / "figures" / "plot.png").write_bytes(b"precious")
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", str(tmp_path / "yours")]) == 2
    assert "not written by zssrgan (figures)" in capsys.readouterr().err
    assert (tmp_path / "yours" / "figures" / "plot.png").read_bytes() == b"precious"
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", str(tmp_path / "p"),
                 "--reference-method", "zssr"]) == 2
    assert "a reference method (zssr) compares the points of a grid; these runs have no grid" in capsys.readouterr().err
    assert main(["report", "--experiment", "grid", "--tracking-uri", store, "--out", str(tmp_path / "g"),
                 "--reference-method", "kernelgan-zssr"]) == 2
    assert "no runs of reference method 'kernelgan-zssr' in the ablation; its methods: bicubic, zssr" in \
        capsys.readouterr().err


def _listed(rows: list[tuple]) -> pd.DataFrame:
    """(method, image, grid tag, estimator, PSNR) as MLflow lists such runs (seed 0, x2)."""
    return pd.DataFrame([{"run_id": f"r{n}", "status": "FINISHED", "tags.zssrgan.job_key": f"k{n}",
                          "tags.zssrgan.method": m, "tags.zssrgan.image": image, "tags.zssrgan.scale": "2",
                          "tags.zssrgan.seed": "0", "tags.zssrgan.grid": grid, "tags.zssrgan.estimator": e or None,
                          "metrics.psnr_y": psnr} for n, (m, image, grid, e, psnr) in enumerate(rows)])


def test_an_estimator_grid_pairs_each_method_across_estimators():
    """Hand-written numbers: a report row's name carries its estimator, so across the values of
    `estimator` a method is paired under its own name; zssr reads no estimator and is the same run
    under both values."""
    rows = []
    for i, image in enumerate(IMAGES):
        rows.append(("zssr", image, "", "", 30.0 + i))
        rows += [("kernelgan-zssr", image, f"estimator={e}", e, 30.0 + i + gain) for e, gain in
                 (("kernelgan", 1.0), ("cross-scale", 2.0 + i))]
    ablated, points = ablation_rows(prepare(_listed(rows)))
    assert Counter(ablated["method"]) == {"zssr": 4, "kernelgan-zssr [kernelgan]": 2,
                                          "kernelgan-zssr [cross-scale]": 2}
    by_value = paired_differences(ablated, points, "psnr_y")
    assert set(by_value["reference"]) == {"estimator=cross-scale"}
    _assert_paired(by_value, "kernelgan-zssr", "cross-scale", [0.0, 0.0])
    _assert_paired(by_value, "kernelgan-zssr", "kernelgan", [-1.0, -2.0])
    by_method = paired_differences(ablated, points, "psnr_y", reference_method="zssr")
    _assert_paired(by_method, "kernelgan-zssr [kernelgan]", "kernelgan", [1.0, 1.0])
    _assert_paired(by_method, "kernelgan-zssr [cross-scale]", "cross-scale", [2.0, 3.0])


def test_a_reference_method_must_name_one_row_per_point():
    """Two sweeps reported together (--sweep all), each with its own estimator, over a ZSSR grid:
    'kernelgan-zssr' names two report rows at every grid point."""
    rows = [("zssr", "a", f"zssr.iters={n}", "", 30.0 + n) for n in (5, 10)]
    rows += [("kernelgan-zssr", "a", "", e, 31.0) for e in ("kernelgan", "cross-scale")]
    ablated, points = ablation_rows(prepare(_listed(rows)))
    with pytest.raises(ValueError, match=r"names several report rows \(kernelgan-zssr \[cross-scale\], "
                                         r"kernelgan-zssr \[kernelgan\]\); name one of them"):
        paired_differences(ablated, points, "psnr_y", reference_method="kernelgan-zssr")
    by_row = paired_differences(ablated, points, "psnr_y", reference_method="kernelgan-zssr [kernelgan]")
    _assert_paired(by_row, "zssr", 10, [9.0])


def test_report_takes_a_relative_out_and_names_the_store_it_looked_in(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--experiment", "plain", "--tracking-uri", store, "--out", "rep"]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'rep' / 'index.html'}" in out and (tmp_path / "rep/tables/methods.csv").is_file()
    assert f"zssrgan ui --tracking-uri {store}, then open http://127.0.0.1:5000/#/experiments/" in out
    assert "workflowType=machine_learning" in out
    # from another folder the default store is looked for there, named, and not created empty
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", "--experiment", "plain", "--out", "rep"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {elsewhere / 'mlflow.db'} (--tracking-uri sqlite:///mlflow.db, relative to" in err
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "rep").exists()
