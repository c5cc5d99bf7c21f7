"""The spectral blur model: the width and axes of an LR image's blur, read from its power spectrum.

``auto`` needs the x2 kernel that made an LR image, from the image alone. The cross-scale cue
(:mod:`zssrgan.cross_scale`) matches one number, a high-band/mid-band energy ratio, and confuses
an image's own softness with blur: bicubic-downscaled and DIV2KRK-blurred images overlap in its
readings (benchmarks/RESULTS.md). The whole shape of the spectrum separates them far better.

- **Width.** How the power falls across 11 bands up to the Nyquist frequency (a blur bends that
  curve near Nyquist; an image's own softness tilts it everywhere), and how unevenly it falls
  across directions at high frequencies (the protocol's blurs are anisotropic, the cubic kernel is
  not): 15 numbers, mapped to the width (:func:`zssrgan.kernels.kernel_width`) by a ridge
  regression.
- **Axes.** A Gaussian blur of covariance S multiplies the power at frequency f by
  exp(-4 pi^2 f'Sf), so over a ring of frequencies the log power varies with the direction
  theta as -(S_xx - S_yy)/2 cos 2theta - S_xy sin 2theta, up to a constant and the scene's own
  anisotropy. The (cos 2theta, sin 2theta) coefficients of two high rings, less those of a low
  ring (where the blur is negligible, so the scene's anisotropy largely cancels), are mapped by
  two fitted gains to the kernel's anisotropic part ((S_xx - S_yy)/2, S_xy), whose angle is the
  blur's major axis.

Both are learned from synthetic degradations of HR photos (:func:`train_blur_model`): random
crops of 200-520 px, each degraded by MATLAB's bicubic kernel and by two DIV2KRK-protocol kernels
(Bell-Kligler et al., NeurIPS 2019; :func:`zssrgan.kernels.sample_div2krk_kernel`), x2, saved to
8 bits. Our own construction: a learned no-reference estimate in the spirit of the kernel
predictors of blind SR (e.g. Gu et al., CVPR 2019, IKC), on hand-made features small enough to
train in seconds on a dozen images. The package ships one trained on 12 of the 15 classic images
(``zssrgan/data/priors/blur_x2.npz``; lenna, face and man kept aside to check it);
``zssrgan prior train-blur`` trains another. Files are ``.npz`` of plain arrays (no pickle).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
from scipy import stats

from .config import ConfigError, require_at_least
from .errors import InputError
from .io import read_npz, write_npz
from .kernels import (covariance_axes, covariance_width, kernel_covariance, matlab_bicubic_kernel,
                      sample_div2krk_kernel)
from .protocols import centred_for
from .resize import imresize
from .spectrum import power_spectrum

SHIPPED = Path(__file__).resolve().parent / "data" / "priors" / "blur_x2.npz"
BAND_EDGES = np.geomspace(0.03, 0.5, 13)  # cycles per pixel; band 1 is the reference level
REFERENCE_BAND = 1
SECTORS = 8  # orientations over [0, pi)
DIRECTION_BANDS = ((0.15, 0.3), (0.3, 0.5))  # high rings whose fall-off is compared across directions
DIRECTION_BASE = (0.05, 0.1)  # the low ring they are measured from
N_FEATURES = len(BAND_EDGES) - 2 + 2 * len(DIRECTION_BANDS)
MIN_SIDE = 64  # every band and direction sector has coefficients from here on (checked too)
ASPECT_CHECK = 1.5  # the training check's angle errors are over kernels at least this anisotropic


class BlurModelError(InputError):
    """A blur-model file that cannot be used: unreadable, or not a model of this code's features."""


def spectral_features(lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs for an HxWx3 [0, 1] image: the width features (the log power of 11 bands
    relative to the reference band; for each high ring, the spread (max - min and standard
    deviation) over 8 orientations of the log fall-off from that orientation's low ring) and the
    axes features ((2, 2): each high ring's (cos 2theta, sin 2theta) log-power coefficients less the
    low ring's)."""
    lr = np.asarray(lr)
    if lr.ndim != 3 or lr.shape[2] != 3 or min(lr.shape[:2]) < MIN_SIDE:
        raise InputError(f"the spectral blur model reads HxWx3 images of at least {MIN_SIDE}x{MIN_SIDE} px, "
                         f"got an array of shape {lr.shape} (`--set auto.width_from=cue` reads smaller ones)")
    power, radius, angle = power_spectrum(lr)
    log_power = np.log(power + 1e-20)

    def ring(lo: float, hi: float) -> np.ndarray:
        return (radius >= lo) & (radius < hi)

    def harmonics(mask: np.ndarray) -> np.ndarray:
        """Least-squares (cos 2theta, sin 2theta) coefficients of the log power over ``mask``."""
        basis = np.c_[np.ones(mask.sum()), np.cos(2 * angle[mask]), np.sin(2 * angle[mask])]
        return np.linalg.lstsq(basis, log_power[mask], rcond=None)[0][1:]

    def mean_power(mask: np.ndarray) -> float:
        if not mask.any():
            raise InputError(f"image of {lr.shape[0]}x{lr.shape[1]} px: too small for the spectral blur model's "
                             "frequency bands (`--set auto.width_from=cue` reads smaller ones)")
        return float(power[mask].mean())

    band_power = np.array([mean_power(ring(lo, hi)) for lo, hi in zip(BAND_EDGES[:-1], BAND_EDGES[1:])])
    if band_power[REFERENCE_BAND] <= 0:
        raise InputError("the image has no low-band energy (a flat image): the spectral blur model cannot judge it")
    bands = np.log(band_power + 1e-20)
    width = list(np.delete(bands - bands[REFERENCE_BAND], REFERENCE_BAND))
    sector = np.minimum((angle / np.pi * SECTORS).astype(int), SECTORS - 1)
    base_ring, *high_rings = (ring(*edges) for edges in (DIRECTION_BASE, *DIRECTION_BANDS))

    def sector_log_power(mask: np.ndarray) -> np.ndarray:
        return np.log(np.array([mean_power((sector == s) & mask) for s in range(SECTORS)]) + 1e-20)

    base = sector_log_power(base_ring)
    for high in high_rings:
        falloff = sector_log_power(high) - base
        width += [falloff.max() - falloff.min(), falloff.std()]
    base_harmonics = harmonics(base_ring)
    axes = np.array([harmonics(high) - base_harmonics for high in high_rings])
    return np.asarray(width), axes


def anisotropic_part(covariance: np.ndarray) -> np.ndarray:
    """((S_xx - S_yy) / 2, S_xy) of a 2x2 covariance: its departure from isotropy."""
    return np.array([(covariance[0, 0] - covariance[1, 1]) / 2, covariance[0, 1]])


def aspect_ratio(mean_variance: float, anisotropy: float) -> float:
    """Ratio of the principal standard deviations of a covariance with this mean of its principal
    variances and half their difference (capped at 0.9 x the mean: a ratio of at most 4.4; 1
    without variance)."""
    if mean_variance <= 0:
        return 1.0
    anisotropy = min(abs(anisotropy), 0.9 * mean_variance)
    return float(np.sqrt((mean_variance + anisotropy) / (mean_variance - anisotropy)))


@dataclass
class BlurReading:
    """A kernel's RMS width (px at the HR scale), the half-difference of its principal variances
    (px^2) and the angle of its major axis (radians, from the column axis)."""

    width: float
    anisotropy: float
    angle: float

    @property
    def aspect(self) -> float:
        return aspect_ratio(self.width ** 2, self.anisotropy)


@dataclass
class BlurModel:
    """Width: ridge regression on standardised width features (width = weights . z + bias). Axes:
    anisotropic part = gains[0] x ring 1's coefficients + gains[1] x ring 2's."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    gains: np.ndarray
    info: dict

    def width(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.scale @ self.weights + self.bias

    def axes(self, features: np.ndarray) -> tuple[float, float]:
        """(anisotropy, angle of the major axis) from the axes features of one image."""
        part = self.gains @ features
        return float(np.hypot(*part)), float(np.arctan2(part[1], part[0]) / 2)

    def read(self, lr: np.ndarray) -> BlurReading:
        """What the model reads of the x2 kernel that made ``lr``."""
        width_features, axes_features = spectral_features(lr)
        reading = BlurReading(float(self.width(width_features)), *self.axes(axes_features))
        if not np.isfinite([reading.width, reading.anisotropy, reading.angle]).all():
            raise InputError(f"the spectral blur model read no finite kernel from this image ({reading})")
        return reading


@dataclass
class BlurTrainingConfig:
    """How the synthetic training cases are made and the regression fitted."""

    crops_per_image: int = 16
    div2krk_per_crop: int = 2  # plus one bicubic degradation of every crop
    min_crop: int = 200
    max_crop: int = 520
    ridge: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        # the crops' x2 LR images are read by the model: at least MIN_SIDE a side
        require_at_least("blur model training: ", self, crops_per_image=1, div2krk_per_crop=0, min_crop=2 * MIN_SIDE)
        if self.max_crop < self.min_crop:
            raise ConfigError(f"blur model training: max_crop ({self.max_crop}) is under min_crop ({self.min_crop})")


@dataclass
class _Cases:
    names: np.ndarray
    blurred: np.ndarray  # DIV2KRK-protocol (True) or bicubic
    width_features: np.ndarray
    axes_features: np.ndarray  # (n, 2, 2)
    covariances: np.ndarray  # (n, 2, 2), the true kernels'

    def subset(self, mask: np.ndarray) -> "_Cases":
        return _Cases(*(getattr(self, f.name)[mask] for f in fields(self)))


def synthetic_cases(images: Mapping[str, np.ndarray], cfg: BlurTrainingConfig) -> _Cases:
    """Every training case: random crops of each image, degraded by bicubic and DIV2KRK kernels."""
    rng = np.random.default_rng(cfg.seed)
    rows = []
    for name, hr in images.items():
        for _ in range(cfg.crops_per_image):
            size = int(rng.integers(cfg.min_crop, cfg.max_crop + 1)) // 2 * 2
            height, width = min(size, hr.shape[0] // 2 * 2), min(size, hr.shape[1] // 2 * 2)
            top, left = int(rng.integers(0, hr.shape[0] - height + 1)), int(rng.integers(0, hr.shape[1] - width + 1))
            crop = hr[top:top + height, left:left + width]
            kernels = [(False, matlab_bicubic_kernel(2))]
            kernels += [(True, centred_for(sample_div2krk_kernel(rng), 2)) for _ in range(cfg.div2krk_per_crop)]
            for blurred, kernel in kernels:
                lr = np.round(np.clip(imresize(crop, scale=0.5, kernel=kernel), 0, 1) * 255) / 255  # as saved
                rows.append((name, blurred, *spectral_features(lr), kernel_covariance(kernel)))
    return _Cases(*(np.array(column) for column in zip(*rows)))


def fit(cases: _Cases, ridge: float, info: Optional[dict] = None) -> BlurModel:
    """The width's ridge regression (the bias not shrunk) and the axes' two gains (least squares
    over both components: the same gain for any orientation)."""
    features = cases.width_features
    widths = covariance_width(cases.covariances)
    mean, scale = features.mean(0), features.std(0) + 1e-9
    z = np.c_[(features - mean) / scale, np.ones(len(features))]
    penalty = ridge * np.diag([1.0] * features.shape[1] + [0.0])
    solution = np.linalg.solve(z.T @ z + penalty, z.T @ widths)
    parts = np.array([anisotropic_part(c) for c in cases.covariances])  # (n, 2)
    design = cases.axes_features.transpose(0, 2, 1).reshape(-1, 2)  # rows: a component of rings 1 and 2
    gains = np.linalg.lstsq(design, parts.reshape(-1), rcond=None)[0]
    return BlurModel(mean, scale, solution[:-1], float(solution[-1]), gains, info or {})


def train_blur_model(images: Mapping[str, np.ndarray], cfg: BlurTrainingConfig = BlurTrainingConfig()) -> BlurModel:
    """Fit the model on synthetic degradations of ``images`` (name -> HxWx3 [0, 1] HR image). Its
    ``info`` records the settings and a leave-one-image-out check (each image's cases read by a
    model fitted on the others): on the DIV2KRK-protocol cases the mean absolute width error, the
    widths' rank correlation and the median angle error of kernels at least 1.5 times longer than
    wide; the 95th percentile and maximum of the bicubic cases' widths (truly 0.85)."""
    if len(images) < 2:
        raise InputError("the blur model needs at least 2 training images (it is checked image by image)")
    small = [name for name, image in images.items() if min(image.shape[:2]) < 2 * MIN_SIDE]
    if small:
        raise InputError(f"HR images need at least {2 * MIN_SIDE}x{2 * MIN_SIDE} px (the model reads their x2 "
                         f"downscales, of {MIN_SIDE} px or more): {', '.join(small)}")
    start = time.perf_counter()
    cases = synthetic_cases(images, cfg)
    widths = covariance_width(cases.covariances)
    read_widths, angle_errors = np.empty(len(widths)), []
    for name in images:
        mask = cases.names == name
        model = fit(cases.subset(~mask), cfg.ridge)
        read_widths[mask] = model.width(cases.width_features[mask])
        for axes, covariance, blurred in zip(cases.axes_features[mask], cases.covariances[mask], cases.blurred[mask]):
            major, minor, angle = covariance_axes(covariance)
            if blurred and major / minor >= ASPECT_CHECK:
                error = model.axes(axes)[1] - angle
                angle_errors.append(abs((np.degrees(error) + 90) % 180 - 90))
    blurred = cases.blurred
    info = {**asdict(cfg), "images": ",".join(images), "cases": int(len(widths)),
            "loo_div2krk_mean_abs_error": float(np.abs(read_widths - widths)[blurred].mean()),
            "loo_div2krk_rank_correlation": float(stats.spearmanr(read_widths[blurred], widths[blurred])[0]),
            "loo_div2krk_median_angle_error": float(np.median(angle_errors)) if angle_errors else float("nan"),
            "loo_bicubic_p95": float(np.percentile(read_widths[~blurred], 95)),
            "loo_bicubic_max": float(read_widths[~blurred].max())}
    model = fit(cases, cfg.ridge, info)
    model.info["seconds"] = time.perf_counter() - start
    return model


def save_blur_model(path: Union[str, Path], model: BlurModel) -> None:
    write_npz(path, {"mean": model.mean, "scale": model.scale, "weights": model.weights,
                     "bias": np.asarray(model.bias), "gains": model.gains, "info": np.asarray(json.dumps(model.info))},
              "blur model")


def load_blur_model(path: Union[str, Path, None] = None) -> BlurModel:
    """The model in ``path`` (default: the shipped one); refuses, with :class:`BlurModelError`, a
    file that is not an npz of plain arrays or whose arrays do not fit this code's features."""
    path = Path(path) if path else SHIPPED
    if not path.is_file():
        raise BlurModelError(f"no blur model at {path} (train one with `zssrgan prior train-blur`)")
    arrays = read_npz(path, BlurModelError, "blur model")
    expected = {"mean": (N_FEATURES,), "scale": (N_FEATURES,), "weights": (N_FEATURES,), "bias": (), "gains": (2,)}
    shapes = {name: arrays[name].shape if name in arrays else None for name in expected}
    if shapes != expected or any(arrays[name].dtype.kind != "f" for name in expected):
        raise BlurModelError(f"{path}: not a blur model of this code's {N_FEATURES} spectral features "
                             f"(arrays {shapes}, float arrays expected)")
    try:
        info = json.loads(str(arrays["info"])) if "info" in arrays else {}
    except json.JSONDecodeError as error:
        raise BlurModelError(f"{path}: its info entry is not JSON: {error}") from None
    return BlurModel(arrays["mean"], arrays["scale"], arrays["weights"], float(arrays["bias"]), arrays["gains"], info)


@lru_cache(maxsize=4)
def cached_blur_model(path: str = "") -> BlurModel:
    """:func:`load_blur_model`, read once per process (``""``: the shipped model)."""
    return load_blur_model(path or None)
