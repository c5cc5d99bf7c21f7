"""Benchmark inputs: the DIV2KRK folder layout (read and generate) and plain folders of LR photos.

Discovery returns paths only: a sweep expands to tens of thousands of jobs, and each worker loads
its own image. Layout (ALGORITHMS.md section 2): ``gt/img_{id}_gt.png``, ``lr_x{s}/im_{id}.png``,
``gt_k_x{s}/kernel_{id}.mat`` (or ``.npy``), and for x4 the x2 kernel applied twice in
``gt_k_x4/intermediate/kernel_{id}.mat``.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .io import load_image, load_kernel, save_image, save_kernel
from .kernels import analytic_x4_kernel, kernel_shift, sample_div2krk_kernel
from .resize import imresize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
KERNEL_SUFFIXES = (".mat", ".npy")
PROTOCOLS = ("div2krk", "bicubic")
DIV2KRK_SCALES = (2, 4)
_LAYOUT_DIR = re.compile(r"^(gt|lr_x\d+|gt_k_x\d+)$")


class DatasetError(ValueError):
    """A dataset folder that does not hold what the benchmark needs; the message says what and where."""


@dataclass
class ImageItem:
    """One benchmark input, by path. ``kernel_paths`` maps a scale to the true kernel's file; an x4
    DIV2KRK item also maps 2 to the x2 kernel that was applied twice, when the layout keeps it."""

    name: str
    lr_path: Path
    gt_path: Optional[Path] = None
    kernel_paths: dict[int, Path] = field(default_factory=dict)

    def load_kernels(self) -> Optional[dict[int, np.ndarray]]:
        """The true kernels (``{scale: kernel}``), or None when they are unknown."""
        return {s: load_kernel(p) for s, p in sorted(self.kernel_paths.items())} or None


def _images_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: _natural_key(p.stem))


def _natural_key(text: str) -> list:
    """im_2 before im_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _find(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Optional[Path]:
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def _match_all(folder: Path, stems: dict[str, str], suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """``{id: path}`` for every id's file ``stems[id]`` in ``folder``; DatasetError listing the missing ones."""
    found = {i: _find(folder, stem, suffixes) for i, stem in stems.items()}
    missing = [stems[i] for i, p in found.items() if p is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(f"{folder} lacks the {what} of {len(missing)} image(s): {shown} "
                           f"(looked for {'/'.join(suffixes)})")
    return found  # type: ignore[return-value]


def _is_layout(folder: Path) -> bool:
    return any(p.is_dir() and _LAYOUT_DIR.match(p.name) for p in folder.iterdir())


def _discover_layout(root: Path, scale: int) -> list[ImageItem]:
    lr_dir = root / f"lr_x{scale}"
    if not lr_dir.is_dir():
        present = sorted(p.name for p in root.glob("lr_x*") if p.is_dir())
        raise DatasetError(f"{root} has no lr_x{scale}/ folder for scale {scale} "
                           f"(found: {', '.join(present) or 'no lr_x* folder'})")
    lr_paths = _images_in(lr_dir)
    if not lr_paths:
        raise DatasetError(f"{lr_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    lr_by_id = {p.stem[3:] if p.stem.startswith("im_") else p.stem: p for p in lr_paths}
    # A folder that exists must cover every image; an absent folder means "unknown" (None).
    gt_dir, k_dir, mid_dir = root / "gt", root / f"gt_k_x{scale}", root / f"gt_k_x{scale}" / "intermediate"
    gts = _match_all(gt_dir, {i: f"img_{i}_gt" for i in lr_by_id}, IMAGE_SUFFIXES, "ground truth") \
        if gt_dir.is_dir() else {}
    kernel_stems = {i: f"kernel_{i}" for i in lr_by_id}
    kernels = _match_all(k_dir, kernel_stems, KERNEL_SUFFIXES, f"x{scale} kernel") if k_dir.is_dir() else {}
    intermediate = _match_all(mid_dir, kernel_stems, KERNEL_SUFFIXES, "intermediate x2 kernel") \
        if scale == 4 and mid_dir.is_dir() else {}
    items = []
    for i, lr_path in lr_by_id.items():
        kernel_paths = {scale: kernels[i]} if kernels else {}
        if intermediate:
            kernel_paths[2] = intermediate[i]
        items.append(ImageItem(i, lr_path, gts.get(i), dict(sorted(kernel_paths.items()))))
    return items


def discover(path: str | Path, scale: int) -> list[ImageItem]:
    """The benchmark inputs at ``path`` for ``scale``: a DIV2KRK-layout folder (ground truth and true
    kernels picked up when present), a plain folder of LR images (real photos: nothing known), or
    one image file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [ImageItem(path.stem, path)]
    if _is_layout(path):
        return _discover_layout(path, scale)
    images = _images_in(path)
    if not images:
        nested = [p.name for p in sorted(path.iterdir()) if p.is_dir() and _is_layout(p)]
        hint = f"; did you mean {path / nested[0]}?" if nested else ""
        raise DatasetError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no DIV2KRK layout "
                           f"(lr_x{scale}/, gt/, gt_k_x{scale}/){hint}")
    return [ImageItem(p.stem, p) for p in images]


def _check_output(src: Path, out: Path) -> None:
    """Refuse to write into the source folder or over unrelated files."""
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise DatasetError(f"output folder {out} is inside the source folder {src}; choose a folder outside it")
    if out.exists():
        if not out.is_dir():
            raise DatasetError(f"output {out} exists and is not a folder")
        other = sorted(p.name for p in out.iterdir() if not (p.is_dir() and _LAYOUT_DIR.match(p.name)))
        if other:
            raise DatasetError(f"output folder {out} already holds other content ({', '.join(other[:5])}); "
                               f"choose an empty or new folder")


def _image_rng(seed: int, name: str, scale: int) -> np.random.Generator:
    """Per (image, scale) stream: the kernels do not depend on which other images or scales are made."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), scale])


def centred_for_x2(kernel: np.ndarray) -> np.ndarray:
    """``kernel_shift`` for x2, without the spline's tiny negative ripples (a blur is non-negative)."""
    centred = np.clip(kernel_shift(kernel, 2), 0.0, None)
    return centred / centred.sum()


def make_dataset(src: str | Path, out: str | Path, protocol: str = "div2krk",
                 scales: tuple[int, ...] = (2, 4), seed: int = 0) -> Path:
    """Degrade every image of the folder ``src`` into the DIV2KRK layout under ``out``.

    ``div2krk``: x2 = a random 11x11 anisotropic kernel (saved in ``gt_k_x2/``); x4 = a freshly drawn
    x2 kernel (``gt_k_x4/intermediate/``) applied twice, i.e. one correlation with its analytic
    kernel (``gt_k_x4/``) and x4 subsampling. ``bicubic``: MATLAB bicubic downscaling, no kernels.

    The sampled kernel (its Gaussian's mean on the centre tap) is centred for x2 (``kernel_shift``)
    before it is applied and saved: LR pixel i then sits at HR position 2i + 0.5, MATLAB's bicubic
    geometry, which is where ZSSR with a centred kernel, KernelGAN's centred estimates and bicubic
    interpolation all put it. Applying the centre-tap kernel as is (the published DIV2KRK recipe)
    leaves every one of those methods half an HR pixel off the ground truth, several dB of PSNR.
    The ground truth is cropped to a multiple of 4 (and of every scale) so every LR size is exact;
    ids keep the source names (``im_baby.png``). Deterministic under ``seed``.
    """
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    scales = tuple(sorted(set(int(s) for s in scales)))
    allowed = DIV2KRK_SCALES if protocol == "div2krk" else tuple(range(2, 9))
    if not scales or any(s not in allowed for s in scales):
        raise DatasetError(f"scales {scales} not supported by the {protocol} protocol (allowed: {allowed})")
    if not src.is_dir():
        raise DatasetError(f"source {src} is not a folder of images")
    sources = _images_in(src)
    if not sources:
        raise DatasetError(f"{src} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    stems = [p.stem for p in sources]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise DatasetError(f"{src} has several images named {', '.join(duplicates)} (different extensions); "
                           f"ids must be unique")
    _check_output(src, out)

    multiple = math.lcm(4, *scales)
    for source in sources:
        name = source.stem
        gt = load_image(source)
        h, w = (gt.shape[0] // multiple) * multiple, (gt.shape[1] // multiple) * multiple
        if h == 0 or w == 0:
            raise DatasetError(f"{source} ({gt.shape[1]}x{gt.shape[0]}) is smaller than {multiple} pixels")
        gt = np.round(gt[:h, :w].astype(np.float64) * 255.0) / 255.0  # exactly what the PNG will hold
        save_image(_target(out, "gt", f"img_{name}_gt.png"), gt)
        for scale in scales:
            kernel = None
            if protocol == "div2krk":
                k2 = centred_for_x2(sample_div2krk_kernel(_image_rng(seed, name, scale)))
                kernel = k2 if scale == 2 else analytic_x4_kernel(k2, crop=False)
                save_kernel(_target(out, f"gt_k_x{scale}", f"kernel_{name}.mat"), kernel)
                if scale == 4:
                    save_kernel(_target(out, "gt_k_x4/intermediate", f"kernel_{name}.mat"), k2)
            lr = imresize(gt, scale=1.0 / scale, kernel=kernel)
            save_image(_target(out, f"lr_x{scale}", f"im_{name}.png"), np.clip(lr, 0.0, 1.0))
    return out


def _target(out: Path, folder: str, filename: str) -> Path:
    """``out/folder/filename``, refusing a file name that would land outside ``out``."""
    target = (out / folder / filename).resolve()
    if out.resolve() not in target.parents:
        raise DatasetError(f"image name {filename!r} would write outside {out}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
