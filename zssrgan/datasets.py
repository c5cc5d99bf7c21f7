"""Benchmark inputs: the DIV2KRK folder layout (read and generate) and plain folders of LR photos.

Discovery returns paths only: a sweep expands to tens of thousands of jobs, and each worker loads
its own image. Layout (docs/algorithms.md, DIV2KRK): ``gt/img_{id}_gt.png``, ``lr_x{s}/im_{id}.png``,
``gt_k_x{s}/kernel_{id}.mat`` (or ``.npy``), and for x4 the x2 kernel applied twice in
``gt_k_x4/intermediate/kernel_{id}.mat``. A folder made by :func:`make_dataset` also holds
``manifest.json``: its protocol, noise level and, per scale and id, the source image (whose ground
truth the id shares) and the kernel's settings where the protocol records them (gaussian8: its
width; fkp-aniso: its variances and angle).
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import UserError
from .io import load_image, load_kernel, save_image, save_kernel
from .protocols import NOISE_STREAM, NOISE_UNIT, PROTOCOLS, add_noise, item_rng

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
KERNEL_SUFFIXES = (".mat", ".npy")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
_LAYOUT_DIR = re.compile(r"^(gt|lr_x\d+|gt_k_x\d+)$")


class DatasetError(UserError, ValueError):
    """A dataset folder that does not hold what the benchmark needs; the message says what and where."""


@dataclass
class ImageItem:
    """One benchmark input, by path. ``kernel_paths`` maps a scale to the true kernel's file; an x4
    DIV2KRK item also maps 2 to the x2 kernel that was applied twice, when the layout keeps it."""

    name: str
    lr_path: Path
    gt_path: Optional[Path] = None
    kernel_paths: dict[int, Path] = field(default_factory=dict)
    protocol: Optional[str] = None  # how make-dataset degraded it; None when unknown
    kernel_width: Optional[float] = None  # the blur's width, where the protocol has one (gaussian8)
    noise: Optional[float] = None  # the added noise's std in 8-bit levels; None when unknown

    def load_kernels(self) -> Optional[dict[int, np.ndarray]]:
        """The true kernels (``{scale: kernel}``), or None when they are unknown."""
        return {s: load_kernel(p) for s, p in sorted(self.kernel_paths.items())} or None

    def true_kernel_gap(self, scale: int) -> Optional[str]:
        """Why a method given the true kernels cannot run at ``scale``, or None. x4 runs gradually,
        x2 first, so it needs an x2 kernel; a bicubic-protocol item (no kernel files, ground truth
        known) gets MATLAB's bicubic kernels."""
        if not self.kernel_paths:
            return None if self.gt_path is not None else "no true kernel and no ground truth"
        if 2 not in self.kernel_paths:
            return (f"the {self.protocol or 'dataset'} x{scale} kernel is not two x2 steps: no x2 kernel for "
                    f"the gradual first stage")
        return None


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in natural order (img2 before img10)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: _natural_key(p.stem))


def images_by_name(folder: Path) -> dict[str, Path]:
    """:func:`images_in` by name (the file's stem), refusing two files of one name: names are ids."""
    images = images_in(folder)
    stems = [p.stem for p in images]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise DatasetError(f"{folder} has several images named {', '.join(twice)} (different extensions); "
                           f"ids must be unique")
    return {p.stem: p for p in images}


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
    lr_paths = images_in(lr_dir)
    if not lr_paths:
        raise DatasetError(f"{lr_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    lr_by_id = {p.stem[3:] if p.stem.startswith("im_") else p.stem: p for p in lr_paths}
    manifest = _read_manifest(root)
    described = _described(root, manifest, scale, lr_by_id)
    # A folder that exists must cover every image; an absent folder means "unknown" (None).
    gt_dir, k_dir, mid_dir = root / "gt", root / f"gt_k_x{scale}", root / f"gt_k_x{scale}" / "intermediate"
    gt_stems = {i: f"img_{described[i].get('image', i)}_gt" for i in lr_by_id}
    gts = _match_all(gt_dir, gt_stems, IMAGE_SUFFIXES, "ground truth") if gt_dir.is_dir() else {}
    kernel_stems = {i: f"kernel_{i}" for i in lr_by_id}
    kernels = _match_all(k_dir, kernel_stems, KERNEL_SUFFIXES, f"x{scale} kernel") if k_dir.is_dir() else {}
    intermediate = _match_all(mid_dir, kernel_stems, KERNEL_SUFFIXES, "intermediate x2 kernel") \
        if scale == 4 and mid_dir.is_dir() else {}
    items = []
    for i, lr_path in lr_by_id.items():
        kernel_paths = {scale: kernels[i]} if kernels else {}
        if intermediate:
            kernel_paths[2] = intermediate[i]
        known = manifest if described[i] else {}
        items.append(ImageItem(i, lr_path, gts.get(i), dict(sorted(kernel_paths.items())),
                               protocol=known.get("protocol"), kernel_width=described[i].get("kernel_width"),
                               noise=known.get("noise")))
    return items


def _read_manifest(root: Path) -> dict[str, Any]:
    """``root/manifest.json`` as written by :func:`make_dataset`; {} when there is none."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not a readable JSON manifest ({error})") from None
    fields = {"protocol": str, "noise": (int, float), "items": dict}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in fields.items()):
        raise DatasetError(f"{path} is not a zssrgan dataset manifest (needs {', '.join(fields)}); "
                           f"remove it to read the folder as a plain DIV2KRK layout")
    return manifest


def _described(root: Path, manifest: dict[str, Any], scale: int, ids) -> dict[str, dict[str, Any]]:
    """Per id, the manifest's entry (``image``, ``kernel_width``, ...); empty for an id it does not
    describe (an image added later: its own ground truth, no protocol claimed)."""
    entries = manifest.get("items", {}).get(str(scale), {})
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise DatasetError(f"{root / MANIFEST}: its x{scale} items are not a mapping of id to entry")
    for i in ids:
        if i not in entries:
            continue
        image, width = entries[i].get("image", i), entries[i].get("kernel_width", 0.0)
        if not isinstance(image, str) or not image or "/" in image or "\\" in image:
            raise DatasetError(f"{root / MANIFEST}: the source image of {i} ({image!r}) is not a plain name")
        if not isinstance(width, (int, float)) or not math.isfinite(width):
            raise DatasetError(f"{root / MANIFEST}: the kernel width of {i} ({width!r}) is not a number")
    return {i: entries.get(i, {}) for i in ids}


def discover(path: str | Path, scale: int) -> list[ImageItem]:
    """The benchmark inputs at ``path`` for ``scale``: a DIV2KRK-layout folder (ground truth, true
    kernels and, from ``manifest.json``, protocol and kernel width picked up when present), a plain
    folder of LR images (real photos: nothing known), or one image file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DatasetError(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [ImageItem(path.stem, path)]
    if _is_layout(path):
        return _discover_layout(path, scale)
    images = images_in(path)
    if not images:
        nested = [p.name for p in sorted(path.iterdir()) if p.is_dir() and _is_layout(p)]
        hint = f"; did you mean {path / nested[0]}?" if nested else ""
        raise DatasetError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no DIV2KRK layout "
                           f"(lr_x{scale}/, gt/, gt_k_x{scale}/){hint}")
    return [ImageItem(p.stem, p) for p in images]


# where make_dataset builds a dataset inside its output folder, and where the one it replaces goes
# until the new one is in place (left over by an interrupted run, both are removed by the next)
_STAGING, _REPLACED = ".making", ".replaced"


def _check_output(src: Path, out: Path) -> list[Path]:
    """Refuse to write into the source folder, over it, or over anything but a dataset this
    function made (its ``manifest.json`` says so). Returns that dataset's folders and manifest,
    which the new dataset replaces: left in place, a file of the old one (a kernel the new protocol
    does not make, an image no longer in the source) would be paired with the new images. Both
    paths resolved."""
    if out == src or src in out.parents:
        raise DatasetError(f"output folder {out} is inside the source folder {src}; choose a folder outside it")
    if out in src.parents:
        raise DatasetError(f"the source folder {src} is inside the output folder {out}; choose a folder outside it")
    if not out.exists():
        return []
    if not out.is_dir():
        raise DatasetError(f"output {out} exists and is not a folder")
    entries = sorted(p for p in out.iterdir() if p.name not in (_STAGING, _REPLACED))
    other = [p.name for p in entries if not (p.is_dir() and _LAYOUT_DIR.match(p.name)) and p.name != MANIFEST]
    if other:
        raise DatasetError(f"output folder {out} already holds other content ({', '.join(other[:5])}); "
                           f"choose an empty or new folder")
    if entries and not _made_here(out / MANIFEST):
        raise DatasetError(f"output folder {out} holds a dataset that `zssrgan make-dataset` did not make "
                           f"(no manifest of its own); choose an empty or new folder")
    return entries


def _made_here(manifest: Path) -> bool:
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == MANIFEST_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def make_dataset(src: str | Path, out: str | Path, protocol: str = "div2krk",
                 scales: tuple[int, ...] = (2, 4), seed: int = 0, noise: float = 0.0) -> Path:
    """Degrade every image of the folder ``src`` into the DIV2KRK layout under ``out`` with one of
    :data:`~zssrgan.protocols.PROTOCOLS`, plus ``noise`` (a standard deviation in 8-bit levels,
    0-255) of additive Gaussian noise on every LR image; ``manifest.json`` records the protocol and
    each item's source image and kernel settings, for :func:`discover`. A dataset made here before
    is replaced (the new one is built inside ``out`` and moved in place once complete). Returns
    the dataset's folder, resolved.

    The ground truth is cropped to a multiple of 4 (and of every scale) so every LR size is exact;
    ids keep the source names (``im_baby.png``), with the kernel width where the protocol varies it
    (``im_baby_sig0.80.png``, whose ground truth stays ``img_baby_gt.png``). Deterministic under
    ``seed``.
    """
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    scales = tuple(sorted(set(int(s) for s in scales)))
    allowed = PROTOCOLS[protocol].scales
    if not scales or any(s not in allowed for s in scales):
        raise DatasetError(f"scales {scales} not supported by the {protocol} protocol (allowed: {allowed})")
    if not (math.isfinite(noise) and 0 <= noise <= 255):
        raise DatasetError(f"noise must be a standard deviation in 8-bit levels between 0 and 255, got {noise}")
    if not src.is_dir():
        raise DatasetError(f"source {src} is not a folder of images")
    sources = list(images_by_name(src).values())
    if not sources:
        raise DatasetError(f"{src} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    root = out.resolve()
    previous = _check_output(src.resolve(), root)
    staging, replaced = root / _STAGING, root / _REPLACED
    for leftover in (staging, replaced):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        _build(sources, staging, protocol, scales, seed, noise)
    except BaseException:  # an image that fails, Ctrl-C: the folder stays as it was
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # the new dataset replaces the one made here before (renames within the folder: any file system)
    replaced.mkdir()
    for entry in previous:
        entry.rename(replaced / entry.name)
    for entry in staging.iterdir():
        entry.rename(root / entry.name)
    staging.rmdir()
    shutil.rmtree(replaced)
    return root


def _build(sources: list[Path], out: Path, protocol: str, scales: tuple[int, ...], seed: int, noise: float) -> None:
    """Write the dataset of ``sources`` into the new folder ``out`` (see :func:`make_dataset`)."""
    multiple = math.lcm(4, *scales)
    items: dict[str, dict[str, dict]] = {str(scale): {} for scale in scales}
    for source in sources:
        name = source.stem
        gt = load_image(source)
        h, w = (gt.shape[0] // multiple) * multiple, (gt.shape[1] // multiple) * multiple
        if h == 0 or w == 0:
            raise DatasetError(f"{source} ({gt.shape[1]}x{gt.shape[0]}) is smaller than {multiple} pixels")
        gt = np.round(gt[:h, :w].astype(np.float64) * 255.0) / 255.0  # exactly what the PNG will hold
        save_image(_target(out, "gt", f"img_{name}_gt.png"), gt)
        for scale in scales:
            for item in PROTOCOLS[protocol].fn(gt, name, scale, seed):
                if item.kernel is not None:
                    save_kernel(_target(out, f"gt_k_x{scale}", f"kernel_{item.name}.mat"), item.kernel)
                if item.intermediate is not None:
                    save_kernel(_target(out, f"gt_k_x{scale}/intermediate", f"kernel_{item.name}.mat"),
                                item.intermediate)
                lr = add_noise(item.lr, noise, item_rng(seed, item.name, scale, NOISE_STREAM))
                save_image(_target(out, f"lr_x{scale}", f"im_{item.name}.png"), np.clip(lr, 0.0, 1.0))
                items[str(scale)][item.name] = {"image": name, **item.info}
    manifest = {"format": MANIFEST_FORMAT, "protocol": protocol, "description": PROTOCOLS[protocol].description,
                "seed": seed, "scales": list(scales), "noise": float(noise), "noise_unit": NOISE_UNIT,
                "items": items}
    _target(out, ".", MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _target(out: Path, folder: str, filename: str) -> Path:
    """``out/folder/filename``, refusing a file name that would land outside ``out``."""
    target = (out / folder / filename).resolve()
    if out.resolve() not in target.parents:
        raise DatasetError(f"image name {filename!r} would write outside {out}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
