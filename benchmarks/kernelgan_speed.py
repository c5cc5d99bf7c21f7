"""KernelGAN speed: the literal step, the production step and K runs in lock-step, in one run.

The literal step follows the published code's structure: crops cut from the NumPy image and
converted every step, the deep linear G run layer by layer, its kernel found by pushing a delta,
the bicubic target convolved every step, G run again for D's step, a per-parameter Adam loop and
one host read of the bicubic loss per step. All steps use the same networks, losses and crop
positions. "previous production" is the production step before D's fused forward, the fused (lean) Adam
and the thread cap (D through the module, Adam over parameter lists, the process's threads);
"production, process threads" is today's step without the cap (``kernelgan.cpu_threads=0``);
"production, 8 channels" is the production step with 8 channels in G and D instead of 64: the same
operations with a small fraction of the arithmetic, the cost of launching them (a launch floor).
Lock-step rows are per run-iteration (a step of K runs / K); 4 sequential runs of the production
step deliver the production row's rate. ``--compile`` adds the production step with D's fused
forward and backward through ``torch.compile`` (its compilation time in the JSON's warm-up).

Each thread count (the default, then 1) is timed in alternating blocks, so that load from other
processes hits every variant alike, and repeated: the table gives the median per-step time and
the median [min-max] of the ratios over the repeats. Arithmetic is counted by torch's FLOP counter
(matmuls and convolutions) and set against a matmul of D's shape: the arithmetic floor of a step.
``--zssr`` measures whether ZSSR's step is launch-bound at the ``quick`` crop size (the same step
at an 8x8 crop gives the launch cost). ``--full`` times a full ``paper`` estimate and 4 in lock-step.
``--fkp`` times a KernelGAN-FKP iteration (3 critic and 3 latent steps) at the ``quick`` batch (8)
and the ``paper`` batch (64): the production iteration, the same at the process's threads, and
the previous one (torch's Adam, crops and the critic steps' fake made anew for every step, the
process's threads); its FLOPs (the gradient penalty's double backward included) against a matmul
of the critic's widest layer.

``--profile`` lists the production step's operations by self CPU time (torch's profiler, grouped
by operation and input shapes): where a step's time goes.

    .venv/bin/python benchmarks/kernelgan_speed.py [--threads 2 1] [--repeats 3] [--zssr] [--full] [--compile] [--fkp]
        [--profile] [--no-kernelgan]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, _FlopCounterMode

from zssrgan.archs.kernelgan_arch import Discriminator, Generator, composed_kernel_by_delta
from zssrgan.config import preset, set_value
from zssrgan.device import at_most_threads, cpu_model, device_name, set_threads
from zssrgan.losses import (BICUBIC_X2, adversarial_l1, bicubic_downscale, boundaries_loss, boundaries_mask,
                            centralized_loss, sparsity_loss, sum_to_one_loss)
from zssrgan.train.crops import sample_crops
from zssrgan.train.kernelgan import KernelGANTrainer, estimate_kernel, prepare_image
from zssrgan.train.kernelgan_fkp import FKPTrainer
from zssrgan.train.kernelgan_lockstep import LockstepKernelGAN, train_lockstep
from zssrgan.train.zssr import ZSSRTrainer

OUT = Path(__file__).parent / "out"
LOCKSTEP_RUNS = (1, 2, 4, 8)
CPU = torch.device("cpu")


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


def time_blocks(steppers: dict[str, Callable[[int], object]], blocks: int, block_steps: int,
                counters: Optional[dict[str, int]] = None) -> dict[str, dict[str, float]]:
    """Median wall and CPU (process) seconds per step of each stepper, timed in alternating blocks
    (after a warm-up step of each unless ``counters``, the steps already taken, are given).

    CPU time is what the step costs when the machine is shared; wall time is what a user waits."""
    samples: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steppers}
    if counters is None:
        counters = dict.fromkeys(steppers, 1)
        for step in steppers.values():
            step(0)
    for _ in range(blocks):
        for name, step in steppers.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(block_steps):
                step(counters[name])
                counters[name] += 1
            samples[name]["wall"].append((time.perf_counter() - wall) / block_steps)
            samples[name]["cpu"].append((time.process_time() - cpu) / block_steps)
    return {name: {kind: float(np.median(v)) for kind, v in s.items()} for name, s in samples.items()}


def step_functions(image: np.ndarray, cfg, device: torch.device) -> dict[str, Callable[[int], object]]:
    """The production step, the same with the layer-by-layer G, and the literal step, on ``device``."""
    fast = KernelGANTrainer(image, cfg.kernelgan, device=device, rng=np.random.default_rng(0))
    layered_cfg = set_value(cfg, "kernelgan.fast_generator", False).kernelgan
    layered = KernelGANTrainer(image, layered_cfg, device=device, rng=np.random.default_rng(0))
    literal = LiteralKernelGAN(image, cfg.kernelgan, seed=0, device=device)
    return {"production": fast.step, "production, layer-by-layer G": layered.step, "literal": literal.step}


def previous_production(image: np.ndarray, cfg) -> KernelGANTrainer:
    """The production step before D's fused forward, the fused Adam and the thread cap (D through
    the module, Adam over parameter lists, the process's threads)."""
    cfg = set_value(set_value(cfg, "kernelgan.fast_discriminator", False), "kernelgan.cpu_threads", 0)
    trainer = KernelGANTrainer(image, cfg.kernelgan, device=CPU, rng=np.random.default_rng(0))
    k, betas = cfg.kernelgan, (cfg.kernelgan.beta1, 0.999)
    trainer.opt_g = torch.optim.Adam(trainer.G.parameters(), lr=k.lr_g, betas=betas, foreach=True)
    trainer.opt_d = torch.optim.Adam(trainer.D.parameters(), lr=k.lr_d, betas=betas, foreach=True)
    return trainer


def compiled_production(image: np.ndarray, cfg, device: torch.device = CPU) -> KernelGANTrainer:
    """The production step with D's fused forward (and its backward) through ``torch.compile`` (on
    any device: on CUDA the same call compiles for the GPU)."""
    trainer = KernelGANTrainer(image, cfg.kernelgan, device=device, rng=np.random.default_rng(0))
    trainer.discriminate = torch.compile(trainer.discriminate, dynamic=False)
    return trainer


class PythonThreadPair:
    """Two independent production runs stepped at once on two Python threads (one intra-op thread
    each): what a second core gives one process whose steps are small operations (the GIL
    serialises their Python side). The runner instead gives each job its own process and core."""

    def __init__(self, trainers: list[KernelGANTrainer]) -> None:
        self.trainers = trainers
        self.pool = ThreadPoolExecutor(len(trainers), initializer=torch.set_num_threads, initargs=(1,))

    def step(self, i: int) -> None:
        for future in [self.pool.submit(trainer._step_tensors, i) for trainer in self.trainers]:
            future.result()


PAIR = "2 runs on 2 Python threads"


def kernelgan_steppers(image: np.ndarray, compiled: bool) -> tuple[dict[str, Callable[[int], object]], dict[str, int]]:
    """The steps to compare and how many run-iterations one call of each makes. (The layer-by-layer
    G of :func:`step_functions` is left out: it costs as much as the literal step.)"""
    cfg = preset("paper")
    steps = step_functions(image, cfg, CPU)
    uncapped = KernelGANTrainer(image, set_value(cfg, "kernelgan.cpu_threads", 0).kernelgan, device=CPU,
                                rng=np.random.default_rng(0))
    narrow = set_value(set_value(cfg, "kernelgan.g_channels", 8), "kernelgan.d_channels", 8)
    steppers = {"literal": steps["literal"], "previous production": previous_production(image, cfg).step,
                "production": steps["production"], "production, process threads": uncapped.step,
                "production, 8 channels": KernelGANTrainer(image, narrow.kernelgan, device=CPU,
                                                           rng=np.random.default_rng(0)).step}
    if compiled:
        steppers["production, torch.compile D"] = compiled_production(image, cfg).step
    runs = dict.fromkeys(steppers, 1)
    if torch.get_num_threads() >= 2:
        steppers[PAIR] = PythonThreadPair([KernelGANTrainer(image, cfg.kernelgan, device=CPU,
                                                            rng=np.random.default_rng(seed)) for seed in (0, 1)]).step
        runs[PAIR] = 2
    for k in LOCKSTEP_RUNS:
        trainers = [KernelGANTrainer(image, cfg.kernelgan, device=CPU, rng=np.random.default_rng(seed))
                    for seed in range(k)]
        steppers[f"lock-step K={k}"] = LockstepKernelGAN(trainers).step
        runs[f"lock-step K={k}"] = k
    return steppers, runs


def step_flops(step: Callable[[int], object], i: int) -> float:
    """Matmul and convolution FLOPs of one call (forward and backward), by torch's counter."""
    with FlopCounterMode(display=False) as counter:
        step(i)
    return float(counter.get_total_flops())


def matmul_gflops(rows: int, inner: int, cols: int, windows: int = 6, seconds: float = 0.05) -> float:
    """GFLOP/s of a (rows x inner) @ (inner x cols) float32 matmul: the best of ``windows`` short
    windows (what the CPU gives when other processes leave it alone for a moment)."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    for _ in range(10):
        a @ b
    best = 0.0
    for _ in range(windows):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            n += 1
        best = max(best, 2 * rows * inner * cols * n / (time.perf_counter() - start) / 1e9)
    return best


def measure_kernelgan(image: np.ndarray, threads: int, args: argparse.Namespace) -> dict:
    set_threads(threads)
    steppers, runs = kernelgan_steppers(image, args.compile)
    counters = dict.fromkeys(steppers, 0)
    compile_s = {}
    for name, step in steppers.items():  # warm-up (and compilation)
        start = time.perf_counter()
        for _ in range(2):
            step(counters[name])
            counters[name] += 1
        compile_s[name] = time.perf_counter() - start
    flops = {name: step_flops(step, counters[name]) / runs[name] for name, step in steppers.items()}
    if PAIR in flops:  # the counter sees only this thread's operations; the pair's are production steps
        flops[PAIR] = flops["production"]
    counters = {name: c + 1 for name, c in counters.items()}
    repeats = [time_blocks(steppers, args.blocks, args.block_steps, counters) for _ in range(args.repeats)]
    per_run = [{name: {k: v / runs[name] for k, v in t.items()} for name, t in rep.items()} for rep in repeats]
    median = {name: {k: float(np.median([rep[name][k] for rep in per_run])) for k in ("wall", "cpu")}
              for name in steppers}

    def spread(numerator: str, denominator: str) -> dict[str, list[float]]:
        """Median, min and max over the repeats of numerator / denominator time."""
        ratios = {k: [rep[numerator][k] / rep[denominator][k] for rep in per_run] for k in ("wall", "cpu")}
        return {k: [float(np.median(r)), float(np.min(r)), float(np.max(r))] for k, r in ratios.items()}

    # one thread's work in the D's matmul shapes: the arithmetic floor of the step
    d_shape = matmul_gflops(800, 64, 64)
    return {
        "threads": threads, "repeats": args.repeats, "warm_up_s": compile_s, "ms_per_run_iteration": {n: {k: v * 1e3 for k, v in t.items()} for n, t in median.items()},
        "speedup_vs_literal": {name: spread("literal", name) for name in steppers},
        "lockstep4_vs_4_sequential_production_runs": spread("production", "lock-step K=4"),
        "gflop_per_run_iteration": {n: f / 1e9 for n, f in flops.items()},
        "gflops_per_s_wall": {n: flops[n] / median[n]["wall"] / 1e9 for n in steppers},
        "matmul_gflops_d_shape_800x64x64": d_shape, "matmul_gflops_512": matmul_gflops(512, 512, 512),
        "arithmetic_floor_ms": {n: flops[n] / d_shape / 1e6 for n in steppers},
    }


def print_kernelgan(result: dict) -> None:
    times, speed = result["ms_per_run_iteration"], result["speedup_vs_literal"]
    print(f"\n{result['cpu']}, {result['threads']} thread(s); median of {result['repeats']} repeats; "
          "ratios median [min-max]")
    print(f"{'CPU':<10}{'threads':>8}  {'step (per run-iteration)':<30}{'wall ms':>9}{'cpu ms':>9}{'x literal (wall)':>24}"
          f"{'x literal (cpu)':>24}{'GFLOP':>8}{'GFLOP/s':>9}{'floor ms':>10}")
    for name, t in times.items():
        ratios = "".join(f"{s[0]:>10.1f} [{s[1]:.1f}-{s[2]:.1f}]".rjust(24) for s in (speed[name]["wall"],
                                                                                      speed[name]["cpu"]))
        print(f"{result['cpu'][:10]:<10}{result['threads']:>8}  {name:<30}{t['wall']:>9.2f}{t['cpu']:>9.2f}{ratios}{result['gflop_per_run_iteration'][name]:>8.3f}"
              f"{result['gflops_per_s_wall'][name]:>9.1f}{result['arithmetic_floor_ms'][name]:>10.2f}")
    four = result["lockstep4_vs_4_sequential_production_runs"]
    print(f"4 runs in lock-step vs 4 sequential production runs (run-iterations/s): "
          f"{four['wall'][0]:.2f}x wall [{four['wall'][1]:.2f}-{four['wall'][2]:.2f}], "
          f"{four['cpu'][0]:.2f}x cpu [{four['cpu'][1]:.2f}-{four['cpu'][2]:.2f}]")
    print(f"matmul GFLOP/s: {result['matmul_gflops_d_shape_800x64x64']:.0f} at D's shape (800x64x64), "
          f"{result['matmul_gflops_512']:.0f} at 512^3")


def measure_zssr(image: np.ndarray, threads: int, args: argparse.Namespace) -> dict:
    """ZSSR's step at the quick preset's crop and at an 8x8 crop (the per-step launch cost)."""
    set_threads(threads)
    cfg = preset("quick")
    trainers = {}
    for crop in (cfg.zssr.crop, 8):
        zcfg = set_value(cfg, "zssr.crop", crop).zssr
        trainers[crop] = ZSSRTrainer(image, 2, None, zcfg, zcfg.kernelgan, device=CPU, rng=np.random.default_rng(0))
    steppers = {f"crop {crop}": (lambda i, t=t: t.step()) for crop, t in trainers.items()}
    for step in steppers.values():
        step(0)
    flops = {name: step_flops(step, 0) for name, step in steppers.items()}
    times = time_blocks(steppers, args.blocks, max(1, args.block_steps // 2), dict.fromkeys(steppers, 0))
    big, small = f"crop {cfg.zssr.crop}", "crop 8"
    return {"threads": threads, "ms_per_step": {n: {k: v * 1e3 for k, v in t.items()} for n, t in times.items()},
            "gflop_per_step": {n: f / 1e9 for n, f in flops.items()},
            "gflops_per_s_wall": {n: flops[n] / times[n]["wall"] / 1e9 for n in steppers},
            "launch_share_wall": times[small]["wall"] / times[big]["wall"],
            "matmul_gflops_512": matmul_gflops(512, 512, 512)}


def previous_fkp_iteration(trainer: FKPTrainer) -> Callable[[int], object]:
    """The KernelGAN-FKP iteration before the speed work: torch's Adam, crops and the critic steps'
    fake made anew for every step (the trainer's caches emptied), the process's threads."""
    cfg, betas = trainer.cfg, (trainer.cfg.beta1, 0.999)
    trainer.opt_g = torch.optim.Adam([trainer.G.latent], lr=cfg.lr_latent, betas=betas)
    trainer.opt_d = torch.optim.Adam(trainer.D.parameters(), lr=cfg.lr_d, betas=betas)

    def iteration(i: int) -> None:
        for _ in range(cfg.d_steps):
            trainer._crops_of = trainer._fake_of = (None, None, None)
            trainer.d_step(i)
        for _ in range(cfg.latent_steps):
            trainer._crops_of = (None, None, None)
            trainer.g_step(i)
    return iteration


def fkp_flops(step: Callable[[int], object], i: int) -> float:
    """Matmul and convolution FLOPs of one call. (torch's dispatch-level counter: the public
    FlopCounterMode's module hooks refuse the gradient penalty's ``autograd.grad`` on a leaf.)"""
    counter = FlopCounterMode(display=False)
    with _FlopCounterMode(counter):
        step(i)
    return float(counter.get_total_flops())


def measure_fkp(image: np.ndarray, threads: int, args: argparse.Namespace) -> dict:
    """KernelGAN-FKP's iteration at the quick and the paper batch (see the module docstring)."""
    set_threads(threads)
    result: dict = {"threads": threads}
    for batch in (8, 64):
        base = set_value(preset("quick"), "fkp.batch", batch)

        def trainer(cpu_threads: int) -> FKPTrainer:
            cfg = set_value(base, "fkp.cpu_threads", cpu_threads).fkp
            return FKPTrainer(image, cfg, device=CPU, rng=np.random.default_rng(0))

        capped, uncapped, previous = trainer(base.fkp.cpu_threads), trainer(0), trainer(0)

        def production(i: int, t: FKPTrainer = capped) -> None:
            with at_most_threads(t.cfg.cpu_threads, CPU):
                t._iteration(i)

        steppers = {"previous": previous_fkp_iteration(previous), "production": production,
                    "production, process threads": uncapped._iteration}
        flops = fkp_flops(steppers["production"], 0)
        times = time_blocks(steppers, args.blocks, 1 if batch > 8 else max(1, args.block_steps // 2))
        widest = matmul_gflops(batch * 23 * 23, 32 * 9, 32)  # the critic's 2nd layer as one matmul
        result[f"batch {batch}"] = {
            "ms_per_iteration": {n: {k: v * 1e3 for k, v in t.items()} for n, t in times.items()},
            "speedup_vs_previous_wall": {n: times["previous"]["wall"] / t["wall"] for n, t in times.items()},
            "gflop_per_iteration": flops / 1e9,
            "gflops_per_s_wall": {n: flops / t["wall"] / 1e9 for n, t in times.items()},
            "matmul_gflops_critic_layer": widest, "arithmetic_floor_ms": flops / widest / 1e6}
    return result


def print_fkp(result: dict) -> None:
    print(f"\nKernelGAN-FKP iteration (3 critic + 3 latent steps), {result['threads']} thread(s):")
    for batch in (8, 64):
        r = result[f"batch {batch}"]
        print(f"  batch {batch}: {r['gflop_per_iteration']:.2f} GFLOP; matmul at the critic's layer "
              f"{r['matmul_gflops_critic_layer']:.0f} GFLOP/s (floor {r['arithmetic_floor_ms']:.1f} ms)")
        for name, t in r["ms_per_iteration"].items():
            print(f"    {name:<30}{t['wall']:9.1f} ms wall{t['cpu']:9.1f} ms cpu"
                  f"{r['speedup_vs_previous_wall'][name]:7.2f}x previous{r['gflops_per_s_wall'][name]:7.1f} GFLOP/s")


def lscpu_model() -> str:
    """``lscpu``'s model name (the CPU model as /proc/cpuinfo gives it where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return cpu_model()


def profile_production(image: np.ndarray, threads: int, steps: int = 100, top: int = 15) -> dict:
    """Where the production step's time goes: ``steps`` steps (after 50 of warm-up) under torch's
    profiler, as ``train`` runs them (the thread cap held), grouped by operation and input shapes;
    the ``top`` by self CPU time. The profiler's own cost inflates small operations: read the
    shares, not the absolute times."""
    from torch.profiler import ProfilerActivity, profile

    set_threads(threads)
    trainer = KernelGANTrainer(image, preset("paper").kernelgan, device=CPU, rng=np.random.default_rng(0))
    with at_most_threads(trainer.cfg.cpu_threads, CPU):
        for i in range(50):
            trainer._step_tensors(i)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(50, 50 + steps):
                trainer._step_tensors(i)
    total_us = sum(e.self_cpu_time_total for e in prof.key_averages())

    def rows(events) -> list[dict]:
        return [{"op": e.key, "shapes": str(e.input_shapes), "calls_per_step": e.count / steps,
                 "us_per_call": e.self_cpu_time_total / e.count, "ms_per_step": e.self_cpu_time_total / steps / 1e3,
                 "share": e.self_cpu_time_total / total_us}
                for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]]

    return {"threads": threads, "steps": steps, "ms_per_step_profiled": total_us / steps / 1e3,
            "by_op": rows(prof.key_averages()), "by_op_and_shapes": rows(prof.key_averages(group_by_input_shape=True))}


def print_profile(p: dict) -> None:
    print(f"\nproduction step profiled, {p['threads']} thread(s): {p['ms_per_step_profiled']:.2f} ms a step "
          "(self CPU, profiler included); top operations, then top operations by input shapes:")
    for key, shapes in (("by_op", False), ("by_op_and_shapes", True)):
        for r in p[key]:
            print(f"  {r['share']:6.1%} {r['ms_per_step']:6.3f} ms {r['calls_per_step']:6.1f}x {r['us_per_call']:7.1f} us  "
                  f"{r['op']:<32} {r['shapes'][:70] if shapes else ''}")
        print()


def main() -> None:
    default_threads = torch.get_num_threads()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[default_threads, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--block-steps", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=(200, 300), metavar=("H", "W"))
    parser.add_argument("--zssr", action="store_true", help="also measure ZSSR's step at the quick crop")
    parser.add_argument("--full", action="store_true", help="also time a full paper estimate and 4 in lock-step")
    parser.add_argument("--compile", action="store_true", help="also time the step with D through torch.compile")
    parser.add_argument("--fkp", action="store_true", help="also time KernelGAN-FKP's iteration (quick and paper batch)")
    parser.add_argument("--no-kernelgan", dest="kernelgan", action="store_false", help="skip KernelGAN's own rows")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the production step: its operations by self CPU time")
    args = parser.parse_args()
    image = synthetic_image(*args.size)
    result = {"hardware": device_name(CPU), "cpu": lscpu_model(), "torch": torch.__version__, "image": list(args.size),
              "default_threads": default_threads, "kernelgan": [], "zssr": [], "fkp": [], "profile": []}
    print(f"KernelGAN step on {result['hardware']}, {args.size[0]}x{args.size[1]} image, torch {torch.__version__}")
    for threads in args.threads if args.kernelgan else ():
        result["kernelgan"].append({"cpu": result["cpu"], **measure_kernelgan(image, threads, args)})
        print_kernelgan(result["kernelgan"][-1])
    for threads in args.threads if args.profile else ():
        result["profile"].append(profile_production(image, threads))
        print_profile(result["profile"][-1])
    for threads in args.threads if args.fkp else ():
        result["fkp"].append(measure_fkp(image, threads, args))
        print_fkp(result["fkp"][-1])
    if args.zssr:
        small = synthetic_image(100, 100, seed=1)
        for threads in args.threads:
            z = measure_zssr(small, threads, args)
            result["zssr"].append(z)
            print(f"\nZSSR step (quick, 100x100 at x2), {threads} thread(s):")
            for name, t in z["ms_per_step"].items():
                print(f"  {name:<9} {t['wall']:8.2f} ms wall {t['cpu']:8.2f} ms cpu  {z['gflop_per_step'][name]:7.3f} "
                      f"GFLOP  {z['gflops_per_s_wall'][name]:6.1f} GFLOP/s")
            print(f"  launch cost (8x8 step) / quick step: {z['launch_share_wall']:.1%}; "
                  f"matmul 512^3: {z['matmul_gflops_512']:.0f} GFLOP/s")
    if args.full:
        set_threads(args.threads[0])
        cfg = set_value(preset("paper"), "device", "cpu")
        wall = time.perf_counter()
        estimate_kernel(image, 2, cfg)
        single = time.perf_counter() - wall
        wall = time.perf_counter()
        train_lockstep(image, cfg, seeds=[0, 1, 2, 3])
        four = time.perf_counter() - wall
        result["full_paper_estimate_s"] = {"one run": single, "4 runs in lock-step": four}
        print(f"\nfull paper estimate ({cfg.kernelgan.iters} iters, {args.threads[0]} threads): {single:.1f} s; "
              f"4 restarts in lock-step: {four:.1f} s")
    OUT.mkdir(exist_ok=True)
    (OUT / "kernelgan_speed.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
