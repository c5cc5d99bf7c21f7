"""zssrgan: zero-shot blind super-resolution (KernelGAN, ZSSR, ZSSRGAN), benchmarked at scale.

The algorithms live here and import neither Ray nor MLflow; ``cluster`` runs them as sweeps.
"""
from .config import Config, preset
from .estimators import ESTIMATORS, run_estimator
from .io import load_image, load_kernel, save_image, save_kernel
from .methods import METHODS, run_method
from .resize import imresize
from .results import KernelEstimate, MethodResult
from .train.kernelgan import estimate_kernel

__all__ = [
    "Config", "preset", "load_image", "load_kernel", "save_image", "save_kernel", "METHODS",
    "run_method", "imresize", "KernelEstimate", "MethodResult", "estimate_kernel", "ESTIMATORS", "run_estimator",
]
