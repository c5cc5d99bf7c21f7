"""KernelGAN speed: the production step vs a straightforward literal implementation, same run.

The literal step follows the published code's structure: crops cut from the NumPy image and
converted every step, the deep linear G run layer by layer, its kernel found by pushing a delta,
the bicubic target convolved every step, G run again for D's step, a per-parameter Adam loop and
one host read of the bicubic loss per step. Both use the same networks, losses and crop positions.
The two are timed in alternating blocks so that load from other processes hits both alike.
Also times a full ``paper`` estimate on a synthetic 200x300 image.

    .venv/bin/python benchmarks/kernelgan_speed.py [--threads 1] [--blocks 6] [--block-steps 5]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from zssrgan.archs.kernelgan_arch import Discriminator, Generator, composed_kernel_by_delta
from zssrgan.config import preset, set_value
from zssrgan.device import device_name, set_threads
from zssrgan.losses import (BICUBIC_X2, adversarial_l1, bicubic_downscale, boundaries_loss, boundaries_mask,
                            centralized_loss, sparsity_loss, sum_to_one_loss)
from zssrgan.train.crops import sample_crops
from zssrgan.train.kernelgan import KernelGANTrainer, estimate_kernel, prepare_image

OUT = Path(__file__).parent / "out"


class LiteralKernelGAN:
    """KernelGAN written the straightforward way (see the module docstring); the timing baseline."""

    def __init__(self, image: np.ndarray, cfg, seed: int, device: torch.device = torch.device("cpu")) -> None:
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.cfg, self.image, self.device = cfg, prepare_image(image, cfg, real=False), device
        self.G = Generator(cfg.g_channels).to(device)
        self.D = Discriminator(cfg.d_channels, cfg.d_blocks).to(device)
        self.g_corners = sample_crops(self.image, cfg.input_crop, cfg.n_crop_positions, rng, downscaled=True)
        self.d_corners = sample_crops(self.image, 26, cfg.n_crop_positions, rng)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999), foreach=False)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999), foreach=False)
        self.bicubic = torch.tensor(BICUBIC_X2, dtype=torch.float32, device=device)
        self.mask = torch.tensor(boundaries_mask(13), dtype=torch.float32, device=device)
        self.lambdas = [cfg.lambda_bicubic, cfg.lambda_sum2one, cfg.lambda_boundaries, cfg.lambda_centralized,
                        cfg.lambda_sparse]
        self.below = 0

    def _crop(self, corners: np.ndarray, i: int, size: int, noise: float) -> torch.Tensor:
        top, left = corners[i % len(corners)]
        crop = self.image[top:top + size, left:left + size] + np.random.randn(size, size, 3) * noise
        return torch.tensor(np.transpose(crop, (2, 0, 1)) * 2.0 - 1.0, dtype=torch.float32, device=self.device)[None]

    def _g(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(x.transpose(0, 1)).transpose(0, 1)

    def step(self, i: int) -> None:
        g_in = self._crop(self.g_corners, i, self.cfg.input_crop, 0.0)
        d_in = self._crop(self.d_corners, i, 26, self.cfg.noise_std)
        self.opt_g.zero_grad()
        g_pred = self._g(g_in)
        loss_g = adversarial_l1(self.D(g_pred), real=True)
        kernel = composed_kernel_by_delta(self.G)
        down = bicubic_downscale(F.pad(g_in.transpose(0, 1), (3, 3, 3, 3)), self.bicubic).transpose(0, 1)
        loss_bicubic = F.mse_loss(g_pred, down[:, :, 3:-3, 3:-3])
        terms = [loss_bicubic, sum_to_one_loss(kernel), boundaries_loss(kernel, self.mask),
                 centralized_loss(kernel), sparsity_loss(kernel)]
        (loss_g + sum(w * t for w, t in zip(self.lambdas, terms))).backward()
        self.opt_g.step()
        self.opt_d.zero_grad()
        loss_real = adversarial_l1(self.D(d_in), real=True)
        g_out = self._g(g_in)
        loss_fake = adversarial_l1(self.D((g_out + torch.randn_like(g_out) * 2 * self.cfg.noise_std).detach()), False)
        ((loss_real + loss_fake) * 0.5).backward()
        self.opt_d.step()
        self.below = self.below + 1 if loss_bicubic.item() < self.cfg.bicubic_threshold else 0


def synthetic_image(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Smooth random structure with edges (a blurred mosaic): the speed does not depend on content."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((rows // 8 + 1, cols // 8 + 1, 3))
    return np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:rows, :cols].astype(np.float32)


def step_functions(image: np.ndarray, cfg, device: torch.device) -> dict[str, Callable[[int], object]]:
    """The production step, the same with the layer-by-layer G, and the literal step, on ``device``."""
    fast = KernelGANTrainer(image, cfg.kernelgan, device=device, rng=np.random.default_rng(0))
    layered_cfg = set_value(cfg, "kernelgan.fast_generator", False).kernelgan
    layered = KernelGANTrainer(image, layered_cfg, device=device, rng=np.random.default_rng(0))
    literal = LiteralKernelGAN(image, cfg.kernelgan, seed=0, device=device)
    return {"production": fast.step, "production, layer-by-layer G": layered.step, "literal": literal.step}


def time_blocks(steppers: dict, blocks: int, block_steps: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU (process) seconds per step of each stepper, timed in alternating blocks.

    CPU time is what the step costs when the machine is shared; wall time is what a user waits."""
    samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steppers}
    counters = dict.fromkeys(steppers, 0)
    for name, step in steppers.items():  # warm-up
        step(counters[name]); counters[name] += 1
    for _ in range(blocks):
        for name, step in steppers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(block_steps):
                step(counters[name]); counters[name] += 1
            samples[name]["wall"].append((time.perf_counter() - wall) / block_steps)
            samples[name]["cpu"].append((time.process_time() - cpu) / block_steps)
    return {name: {kind: float(np.median(v)) for kind, v in s.items()} for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--block-steps", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=(200, 300), metavar=("H", "W"))
    parser.add_argument("--full-iters", type=int, default=None, help="iterations of the full estimate (default: paper)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    set_threads(args.threads)
    image = synthetic_image(*args.size)
    cfg = preset("paper")
    device = torch.device(args.device)
    per_step = time_blocks(step_functions(image, cfg, device), args.blocks, args.block_steps)

    full_cfg = cfg if args.full_iters is None else set_value(cfg, "kernelgan.iters", args.full_iters)
    full_cfg = set_value(full_cfg, "device", args.device)
    wall, cpu = time.perf_counter(), time.process_time()
    estimate_kernel(image, 2, full_cfg)
    full = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}

    literal = per_step["literal"]
    result = {
        "hardware": device_name(device), "threads": args.threads, "device": args.device,
        "image": list(args.size), "torch": torch.__version__,
        "ms_per_step": {name: {k: v * 1e3 for k, v in t.items()} for name, t in per_step.items()},
        "speedup_vs_literal": {k: literal[k] / per_step["production"][k] for k in ("wall", "cpu")},
        "full_estimate_s": full, "full_estimate_iters": full_cfg.kernelgan.iters,
    }
    print(f"{'step':<32}{'wall ms':>9}{'cpu ms':>9}{'x faster (wall)':>17}{'x faster (cpu)':>16}")
    for name, t in per_step.items():
        print(f"{name:<32}{t['wall'] * 1e3:>9.1f}{t['cpu'] * 1e3:>9.1f}"
              f"{literal['wall'] / t['wall']:>17.1f}{literal['cpu'] / t['cpu']:>16.1f}")
    print(f"full estimate, {full_cfg.kernelgan.iters} iters on {args.size[0]}x{args.size[1]}: "
          f"{full['wall']:.1f} s wall, {full['cpu']:.1f} s CPU")
    OUT.mkdir(exist_ok=True)
    (OUT / "kernelgan_speed.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
