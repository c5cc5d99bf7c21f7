"""An image's power spectrum as the no-reference blur cues read it (``cross_scale``, ``blur_model``)."""
from __future__ import annotations

import numpy as np

from .metrics import rgb2y


def power_spectrum(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(power, radius, angle) of an HxWx3 [0, 1] image's Y channel, mean removed and Hann-windowed
    (the window keeps the image's borders from adding a cross of false high frequencies): |FFT|^2,
    each coefficient's radial frequency in cycles per pixel (0 to 0.71) and its orientation in [0, pi)."""
    y = rgb2y(img)
    y = (y - y.mean()) * np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    power = np.abs(np.fft.fft2(y)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(y.shape[0]), np.fft.fftfreq(y.shape[1]), indexing="ij")
    return power, np.hypot(fy, fx), np.mod(np.arctan2(fy, fx), np.pi)
