"""The spectral width model: the blur width of an LR image, read from the shape of its power spectrum.

``auto`` needs the width of the x2 kernel that made an LR image, from the image alone. The
cross-scale cue (:mod:`zssrgan.cross_scale`) matches one number, a high-band/mid-band energy
ratio, and confuses an image's own softness with blur: bicubic-downscaled and DIV2KRK-blurred
images overlap in its readings (benchmarks/RESULTS.md). The whole shape of the spectrum separates
them far better: how the power falls across 11 bands up to the Nyquist frequency (a blur bends
that curve near Nyquist; an image's own softness tilts it everywhere), and how unevenly it falls
across directions at high frequencies (the protocol's blurs are anisotropic, the cubic kernel is
not, and a direction's fall-off measured against its own low band cancels most of the scene's
anisotropy). A ridge regression maps these 15 numbers to the width
(:func:`zssrgan.kernels.kernel_width`).

It is learned from synthetic degradations of HR photos (:func:`train_width_model`): random crops
of 200-520 px, each degraded by MATLAB's bicubic kernel and by two DIV2KRK-protocol kernels
(Bell-Kligler et al., NeurIPS 2019; :func:`zssrgan.kernels.sample_div2krk_kernel`), x2, saved to
8 bits. Our own construction: a learned no-reference estimate in the spirit of the kernel
predictors of blind SR (e.g. Gu et al., CVPR 2019, IKC), on hand-made features small enough to
train in seconds on a dozen images. The package ships one trained on 12 of the 15 classic images
(``zssrgan/data/priors/width_x2.npz``; lenna, face and man kept aside to check it); `zssrgan prior
train-width` trains another. Files are ``.npz`` of plain arrays (no pickle).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
from scipy import stats

from .errors import InputError
from .io import read_npz
from .kernels import kernel_width, matlab_bicubic_kernel, sample_div2krk_kernel
from .protocols import centred_for
from .resize import imresize
from .spectrum import power_spectrum

SHIPPED = Path(__file__).resolve().parent / "data" / "priors" / "width_x2.npz"
BAND_EDGES = np.geomspace(0.03, 0.5, 13)  # cycles per pixel; band 1 is the reference level
REFERENCE_BAND = 1
SECTORS = 8  # orientations over [0, pi)
DIRECTION_BANDS = ((0.15, 0.3), (0.3, 0.5))  # high bands whose fall-off is compared across directions
DIRECTION_BASE = (0.05, 0.1)  # each direction's own low band
N_FEATURES = len(BAND_EDGES) - 2 + 2 * len(DIRECTION_BANDS)
MIN_SIDE = 48  # every band and direction sector has coefficients from here on


class WidthModelError(InputError):
    """A width-model file that cannot be used: unreadable, or not a model of this code's features."""


def spectral_features(lr: np.ndarray) -> np.ndarray:
    """The model's 15 inputs for an HxWx3 [0, 1] image: the log power of 11 bands relative to the
    reference band, then, for each of the two high direction bands, the spread (max - min and
    standard deviation) over 8 orientations of the log fall-off from that orientation's low band."""
    lr = np.asarray(lr)
    if lr.ndim != 3 or lr.shape[2] != 3 or min(lr.shape[:2]) < MIN_SIDE:
        raise InputError(f"the spectral width model reads HxWx3 images of at least {MIN_SIDE}x{MIN_SIDE} px, "
                         f"got an array of shape {lr.shape} (`--set auto.width_from=cue` reads smaller ones)")
    power, radius, angle = power_spectrum(lr)

    def log_power(mask: np.ndarray) -> float:
        return float(np.log(power[mask].mean() + 1e-20))

    bands = np.array([log_power((radius >= lo) & (radius < hi)) for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])])
    features = list(np.delete(bands - bands[REFERENCE_BAND], REFERENCE_BAND))
    sector = np.minimum((angle / np.pi * SECTORS).astype(int), SECTORS - 1)
    base = np.array([log_power((sector == s) & (radius >= DIRECTION_BASE[0]) & (radius < DIRECTION_BASE[1]))
                     for s in range(SECTORS)])
    for lo, hi in DIRECTION_BANDS:
        falloff = np.array([log_power((sector == s) & (radius >= lo) & (radius < hi)) for s in range(SECTORS)]) - base
        features += [falloff.max() - falloff.min(), falloff.std()]
    return np.asarray(features)


@dataclass
class WidthModel:
    """Ridge regression on standardised :func:`spectral_features`: width = weights . z + bias."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    info: dict

    def predict(self, lr: np.ndarray) -> float:
        """The predicted width (px at the HR scale) of the x2 kernel that made ``lr``."""
        return float((spectral_features(lr) - self.mean) / self.scale @ self.weights + self.bias)


@dataclass
class WidthTrainingConfig:
    """How the synthetic training cases are made and the regression fitted."""

    crops_per_image: int = 16
    div2krk_per_crop: int = 2  # plus one bicubic degradation of every crop
    min_crop: int = 200
    max_crop: int = 520
    ridge: float = 1.0
    seed: int = 0


def synthetic_cases(images: Mapping[str, np.ndarray], cfg: WidthTrainingConfig
                    ) -> list[tuple[str, str, np.ndarray, float]]:
    """(image name, "bicubic" or "div2krk", features, true width) for every training case."""
    rng = np.random.default_rng(cfg.seed)
    cases = []
    for name, hr in images.items():
        for _ in range(cfg.crops_per_image):
            size = int(rng.integers(cfg.min_crop, cfg.max_crop + 1)) // 2 * 2
            rows, cols = min(size, hr.shape[0] // 2 * 2), min(size, hr.shape[1] // 2 * 2)
            top, left = int(rng.integers(0, hr.shape[0] - rows + 1)), int(rng.integers(0, hr.shape[1] - cols + 1))
            crop = hr[top:top + rows, left:left + cols]
            kernels = [("bicubic", matlab_bicubic_kernel(2))]
            kernels += [("div2krk", centred_for(sample_div2krk_kernel(rng), 2)) for _ in range(cfg.div2krk_per_crop)]
            for label, kernel in kernels:
                lr = np.round(np.clip(imresize(crop, scale=0.5, kernel=kernel), 0, 1) * 255) / 255  # as saved
                cases.append((name, label, spectral_features(lr), kernel_width(kernel)))
    return cases


def fit_ridge(features: np.ndarray, widths: np.ndarray, ridge: float, info: Optional[dict] = None) -> WidthModel:
    """Least squares with an L2 penalty ``ridge`` on the standardised features' weights."""
    mean, scale = features.mean(0), features.std(0) + 1e-9
    z = np.c_[(features - mean) / scale, np.ones(len(features))]
    penalty = ridge * np.diag([1.0] * features.shape[1] + [0.0])  # the bias is not shrunk
    solution = np.linalg.solve(z.T @ z + penalty, z.T @ widths)
    return WidthModel(mean, scale, solution[:-1], float(solution[-1]), info or {})


def train_width_model(images: Mapping[str, np.ndarray], cfg: WidthTrainingConfig = WidthTrainingConfig()
                      ) -> WidthModel:
    """Fit the model on synthetic degradations of ``images`` (name -> HxWx3 [0, 1] HR image). Its
    ``info`` records the settings and a leave-one-image-out check (each image's cases predicted by
    a model fitted on the others): the mean absolute width error and rank correlation on the
    DIV2KRK-protocol cases, and the 95th percentile and maximum of the bicubic cases' predictions
    (their true width is 0.85)."""
    if len(images) < 2:
        raise InputError("the width model needs at least 2 training images (it is checked image by image)")
    start = time.perf_counter()
    cases = synthetic_cases(images, cfg)
    names = np.array([c[0] for c in cases])
    blurred = np.array([c[1] == "div2krk" for c in cases])
    features, widths = np.array([c[2] for c in cases]), np.array([c[3] for c in cases])
    held_out = np.empty(len(cases))
    for name in images:
        mask = names == name
        model = fit_ridge(features[~mask], widths[~mask], cfg.ridge)
        held_out[mask] = (features[mask] - model.mean) / model.scale @ model.weights + model.bias
    info = {**asdict(cfg), "images": ",".join(images), "cases": len(cases),
            "loo_div2krk_mean_abs_error": float(np.abs(held_out - widths)[blurred].mean()),
            "loo_div2krk_rank_correlation": float(stats.spearmanr(held_out[blurred], widths[blurred])[0]),
            "loo_bicubic_p95": float(np.percentile(held_out[~blurred], 95)),
            "loo_bicubic_max": float(held_out[~blurred].max())}
    model = fit_ridge(features, widths, cfg.ridge, info)
    model.info["seconds"] = time.perf_counter() - start
    return model


def save_width_model(path: Union[str, Path], model: WidthModel) -> None:
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"a width model is saved as .npz, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mean=model.mean, scale=model.scale, weights=model.weights, bias=np.asarray(model.bias),
             info=np.asarray(json.dumps(model.info)))


def load_width_model(path: Union[str, Path, None] = None) -> WidthModel:
    """The model in ``path`` (default: the shipped one); refuses, with :class:`WidthModelError`, a
    file that is not an npz of plain arrays or whose arrays do not fit this code's features."""
    path = Path(path) if path else SHIPPED
    if not path.is_file():
        raise WidthModelError(f"no width model at {path} (train one with `zssrgan prior train-width`)")
    arrays = read_npz(path, WidthModelError, "width model")
    shapes = {name: arrays[name].shape if name in arrays else None for name in ("mean", "scale", "weights", "bias")}
    if any(shapes[name] != (N_FEATURES,) for name in ("mean", "scale", "weights")) or shapes["bias"] != ():
        raise WidthModelError(f"{path}: not a width model of this code's {N_FEATURES} spectral features "
                              f"(arrays {shapes})")
    info = json.loads(str(arrays["info"])) if "info" in arrays else {}
    return WidthModel(arrays["mean"], arrays["scale"], arrays["weights"], float(arrays["bias"]), info)


@lru_cache(maxsize=4)
def cached_width_model(path: str = "") -> WidthModel:
    """:func:`load_width_model`, read once per process (``""``: the shipped model)."""
    return load_width_model(path or None)
