"""Typed configuration: one dataclass per component, presets, and dotted-key overrides.

Every field is reachable as a dotted key (``kernelgan.iters``, ``zssr.kernelgan.augment``) so the
command line's ``--set`` / ``--grid`` and the sweep driver can override anything, and the whole
tree flattens to a ``{dotted_key: value}`` dict that is logged with every run. A plugin's settings
dataclass is a section of its own (``Config.plugins``), keyed ``<plugin name>.<field>`` like ours.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from .errors import UserError

# the metadata mark of a field whose value names a file ("": the file shipped with the package); a
# sweep resolves such values to absolute paths and keys its jobs by the file's content (cluster/jobs.py)
FILE = "zssrgan.file"


def file_field() -> Any:
    """A ``str`` field naming a file (empty by default): built-in sections and plugins' settings
    mark their file-valued fields with it."""
    return field(default="", metadata={FILE: True})


def require_at_least(prefix: str, settings: Any, **minimums: int) -> None:
    """Refuse counts and sizes that ``settings`` (a dataclass) cannot run with, in words (each field
    named after ``prefix``), when it is made or overridden (from ``__post_init__``): a sweep with one
    fails before any job runs."""
    for name, low in minimums.items():
        if getattr(settings, name) < low:
            raise ConfigError(f"{prefix}{name} must be at least {low}, got {getattr(settings, name)}")


@dataclass
class KernelGANConfig:
    """KernelGAN as published (docs/algorithms.md, KernelGAN); schedules are fractions of ``iters``."""

    iters: int = 3000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    lr_milestones: tuple[float, ...] = (0.25, 0.5, 0.75)  # 750/1500/2250 of 3000
    lr_gamma: float = 0.1
    input_crop: int = 64  # G's input crop; D's crops are G's output size (26)
    g_channels: int = 64
    d_channels: int = 64
    d_blocks: int = 5
    n_crop_positions: int = 3000
    noise_std: float = 1.0 / 255.0
    shave: int = 10  # pixels shaved from the input unless it is a real photo
    # The published code's bicubic target summed the colour channels (3x the image; fixed in
    # losses.bicubic_downscale): 3 x its weight of 5 keeps the pull towards bicubic that G had there.
    # With 5 against the correct target, D's gradient wins and G never leaves its near-zero init on
    # sharp (bicubic-degraded) images: measured kernel sum -0.05 after 600 steps on a Set14 crop.
    lambda_bicubic: float = 15.0
    lambda_sum2one: float = 0.5
    lambda_boundaries: float = 0.5
    lambda_centralized: float = 0.0
    lambda_sparse: float = 0.0
    lambda_centralized_late: float = 1.0
    lambda_sparse_late: float = 5.0
    # relative bicubic loss (MSE / mean square of the target) under which G counts as bicubic-like:
    # 1% (20 dB), so the adversarial phase starts from a kernel that reproduces bicubic downscaling.
    # Against the correct target the published absolute 0.4 is met by a G that outputs nothing, and a
    # looser relative 0.2 let collapsed or sign-flipped kernels through on 3 of 6 test crops.
    bicubic_threshold: float = 0.01
    bicubic_patience: int = 3
    lambda_update_fraction: float = 200 / 3000  # every 200 of 3000 iterations
    bicubic_decay: float = 100.0
    bicubic_floor: float = 5e-6
    bicubic_switch: float = 5e-3
    n_filtering: int = 40  # post-processing threshold: 0.75 x the (n+1)-th largest tap
    fast_generator: bool = True  # train through the composed 13x13 kernel
    fast_discriminator: bool = True  # D in training mode through archs.kernelgan_fused (same results)
    # crops per step for G and for D (published: 1); more average out the adversarial gradient's noise
    crops_per_step: int = 1
    # intra-op threads of one run's training loop on a CPU (0: the process's count). Its operations
    # are small: on a quiet 2-core machine a second thread saved 3-6% of a step's time for about 45%
    # more CPU, on a shared one it made the step 79x slower (benchmarks/RESULTS.md).
    # K runs in lock-step do K runs' work per operation and may use up to K x cpu_threads threads.
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        require_at_least("kernelgan.", self, iters=1, g_channels=1, d_channels=1, d_blocks=0, n_crop_positions=1,
                         crops_per_step=1, bicubic_patience=1, n_filtering=1, shave=0, cpu_threads=0)


@dataclass
class FKPConfig:
    """KernelGAN-FKP as published (Liang et al., CVPR 2021): a frozen kernel prior's latent against
    a WGAN-GP critic. One iteration: ``d_steps`` critic steps, then ``latent_steps`` latent steps,
    all on one batch of ``batch`` crops."""

    iters: int = 1000
    iters_x4: int = 4000  # the published code trains 4x longer on an x4 image (still estimating x2)
    batch: int = 64
    input_crop: int = 64  # G's input crop; the critic's crops are G's output size (27 with 11 taps)
    d_steps: int = 3
    latent_steps: int = 3
    lr_latent: float = 5e-4
    lr_d: float = 5e-4
    beta1: float = 0.5
    sphere_radius: float = 10.0  # the latent's norm after each step: the kernel size - 1
    gp_weight: float = 0.1
    d_channels: int = 32
    d_layers: int = 5
    shave: int = 10  # pixels shaved from the input unless it is a real photo
    prior: str = file_field()  # an .npz from `zssrgan prior train`; empty: the x2 prior shipped with the package
    # post-processing keeps this many of the strongest taps (kernels.zeroize_negligible); 121 = every
    # tap of an 11x11 kernel: as published, the estimate is only clipped at 0, normalised and centred
    n_filtering: int = 121
    # intra-op threads of the training loop on a CPU (0: the process's count), as kernelgan.cpu_threads
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        require_at_least("fkp.", self, iters=1, iters_x4=1, batch=1, d_steps=1, latent_steps=1, d_channels=1,
                         d_layers=2, shave=0, n_filtering=1, cpu_threads=0)


@dataclass
class ZSSRVariant:
    """The settings that differ between ZSSR's original defaults and its post-KernelGAN use."""

    augment: bool = True
    self_ensemble: bool = True
    back_projection_iters: int = 10
    grad_weighted_loss: bool = False


@dataclass
class ZSSRConfig:
    """ZSSR as published (docs/algorithms.md, ZSSR)."""

    iters: int = 3000  # cap; the learning-rate policy usually stops earlier
    crop: int = 128
    lr: float = 1e-3
    channels: int = 64
    depth: int = 8
    test_every: int = 50  # reconstruction MSE for the learning-rate policy (and reported losses)
    lr_check_every: int = 60
    lr_min_iters: int = 256  # steps since the last change before the policy may change the rate
    lr_slope_range: int = 256  # the line is fitted to the last lr_slope_range // test_every MSEs
    lr_slope_factor: float = 1.5
    lr_decay: float = 10.0
    min_lr: float = 9e-6
    real_noise_std: float = 0.0125  # noise on the sons for real photos
    # the original configuration's augmentation (variants with augment=True): probabilities of
    # "as is" and of a rotation/flip (else a random affine warp), and the affine's ranges
    augment_leave_as_is: float = 0.05
    augment_no_interp: float = 0.45
    augment_min_scale: float = 0.5
    augment_scale_diff_sigma: float = 0.25
    augment_shear_sigma: float = 0.1
    mixed_precision: bool = True  # CUDA only; ignored on CPU
    channels_last: bool = True  # CUDA only; ignored on CPU
    original: ZSSRVariant = field(default_factory=ZSSRVariant)
    kernelgan: ZSSRVariant = field(
        default_factory=lambda: ZSSRVariant(
            augment=False, self_ensemble=False, back_projection_iters=2, grad_weighted_loss=True
        )
    )

    def __post_init__(self) -> None:
        require_at_least("zssr.", self, iters=1, crop=1, channels=1, depth=2, test_every=1, lr_check_every=1)


@dataclass
class ZSSRGANConfig:
    """The adversarial term added to ZSSR (docs/algorithms.md, ZSSRGAN); the mode is the method."""

    disc_ratio: float = 0.5  # r: loss = L1 + r / (1 - r) * c * L_adv
    # c = running mean |L1| / running mean |L_adv| (detached), this momentum per step; 1.0 freezes
    # c at the first step's ratio (the ZSSRGAN report's choice)
    c_momentum: float = 0.9
    lr_d: float = 2e-4  # serial: D's Adam learning rate against ZSSR (e2e keeps KernelGAN's schedule)
    e2e_warmup_iters: int = 0  # KernelGAN-only iterations before the semi end-to-end loop


WIDTH_SOURCES = ("model", "cue")  # where auto reads the blur's width (zssrgan/auto.py)


@dataclass
class AutoConfig:
    """The ``auto`` estimator (zssrgan/auto.py): width and axes from the spectral blur model (or
    the width from the cross-scale cue), optionally the axes from KernelGAN."""

    # "model": the spectral blur model (zssrgan.blur_model); "cue": the cross-scale cue (isotropic)
    width_from: str = "model"
    blur_model: str = file_field()  # a blur model file (zssrgan prior train-blur); "": the shipped one
    # the extra blur t is shrunk below shrink_below: 0 up to zero_below, then linearly back to t at
    # shrink_below. For the model (model_*): it reads 1-2% of bicubic-downscaled images 0.4+ px
    # wide, which costs ZSSR dearly; for the cue: it reads a sharp image's own softness as 0.4-0.8
    # px of blur. Both set on the classic images' training cases (benchmarks/RESULTS.md)
    model_zero_below: float = 0.9
    model_shrink_below: float = 1.2
    zero_below: float = 0.5
    shrink_below: float = 1.4
    # True: a KernelGAN run (15-20 s) orients a clearly anisotropic blur instead of the model; off
    # by default, since its axes were not reliable on small images (benchmarks/RESULTS.md)
    use_gan: bool = False
    restarts: int = 2  # KernelGAN runs with the next seeds when one collapses
    # True: all restarts + 1 runs train at once in lock-step (train.kernelgan_lockstep), the first
    # sound one in seed order is taken: the sequential choice, at one group's time. On a CPU a group
    # of 3 costs about twice one run while few runs collapse, so sequential is the default there
    restarts_lockstep: bool = False
    anisotropy_min: float = 1.5  # ratio of principal standard deviations from which axes are used

    def __post_init__(self) -> None:
        if self.width_from not in WIDTH_SOURCES:
            raise ConfigError(f"auto.width_from: unknown source {self.width_from!r}; choose one of: "
                              f"{', '.join(WIDTH_SOURCES)}")


@dataclass
class Config:
    """The whole tree; ``seed``, ``device`` and ``real`` apply to every component; ``estimator``
    names the kernel estimator of the blind methods (``zssrgan.estimators.ESTIMATORS`` or a plugin)."""

    seed: int = 0
    device: str = "auto"
    real: bool = False  # real photo: no ground truth, real-photo settings
    estimator: str = "kernelgan"
    # a failed estimate (a collapsed KernelGAN run) fails its job; False records it (diagnostic
    # estimate_failed = 1) and hands it on anyway: for debugging, and for plumbing tests of tiny runs
    strict_estimates: bool = True
    kernelgan: KernelGANConfig = field(default_factory=KernelGANConfig)
    fkp: FKPConfig = field(default_factory=FKPConfig)
    zssr: ZSSRConfig = field(default_factory=ZSSRConfig)
    zssrgan: ZSSRGANConfig = field(default_factory=ZSSRGANConfig)
    auto: AutoConfig = field(default_factory=AutoConfig)
    # the settings of the plugins a run uses (zssrgan.plugins), each an instance of the plugin's
    # dataclass under the name the run gives the plugin: keys "<name>.<field>"
    plugins: dict[str, Any] = field(default_factory=dict)


def _quick() -> Config:
    """Short CPU runs for demos and tests (about 30 s per method on a ~100x100 image)."""
    cfg = Config()
    # KernelGAN: 600 steps (~6-12 s of one CPU core); a 5x learning rate held for the first half
    # makes up for the 5x shorter run (G needs ~150 steps at 2e-4 just to leave its tiny init)
    cfg.kernelgan.iters = 600
    cfg.kernelgan.n_crop_positions = 600
    cfg.kernelgan.lr_g = cfg.kernelgan.lr_d = 1e-3
    cfg.kernelgan.lr_milestones = (0.5, 0.75, 0.9)
    # ZSSR: ~14 s of one CPU core for a 100x100 image at x2, +5-7 dB over bicubic interpolation
    # with the true kernel (the learning-rate policy does not act this early: the cap stops it)
    cfg.zssr.iters = 150
    cfg.zssr.crop = 64
    cfg.zssr.original.self_ensemble = False
    # KernelGAN-FKP: the published iteration (3 critic and 3 latent steps) on 8 crops instead of 64,
    # 100 iterations instead of 1000 (4000 at x4): ~25 s of one CPU core. At the published learning
    # rate the latent moves little in 100 iterations; a 10x rate overshoots to wide kernels
    # (benchmarks/RESULTS.md, "KernelGAN-FKP"), so the rate stays as published
    cfg.fkp.iters = cfg.fkp.iters_x4 = 100
    cfg.fkp.batch = 8
    return cfg


PRESETS = {"paper": Config, "quick": _quick}


class ConfigError(UserError, ValueError):
    """A bad preset name, dotted key or value; the message lists the valid choices."""


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted_key: value}`` for every leaf field, the plugins' sections included."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            out.update(flatten(value, key + "."))
        elif isinstance(cfg, Config) and f.name == "plugins":
            for name, settings in value.items():
                out.update(flatten(settings, name + "."))
        else:
            out[key] = value
    return out


# the types a leaf field may have: what the command line can parse
LEAF_TYPES = (bool, int, float, str, tuple[float, ...])


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Every leaf field of the dataclass ``cls`` by dotted key: its type and its field."""
    hints = get_type_hints(cls)
    out: dict[str, tuple[Any, dataclasses.Field]] = {}
    for f in fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            out.update(_leaf_fields(hint, f"{prefix}{f.name}."))
        elif not (cls is Config and f.name == "plugins"):
            out[f"{prefix}{f.name}"] = hint, f
    return out


def _all_leaf_fields(cfg: Config) -> dict[str, tuple[Any, dataclasses.Field]]:
    out = _leaf_fields(Config)
    for name, settings in cfg.plugins.items():
        out.update(_leaf_fields(type(settings), name + "."))
    return out


def leaf_types(cfg: Config) -> dict[str, Any]:
    """The type of every dotted key of ``cfg``, its plugins' sections included."""
    return {key: hint for key, (hint, _) in _all_leaf_fields(cfg).items()}


def file_keys(cfg: Config) -> list[str]:
    """The keys of ``cfg`` whose value names a file (:func:`file_field`), its plugins' included."""
    return [key for key, (_, f) in _all_leaf_fields(cfg).items() if f.metadata.get(FILE)]


def valid_keys(cfg: Config | None = None) -> list[str]:
    return sorted(leaf_types(cfg or Config()))


def check_settings(cls: Any, owner: str) -> None:
    """A plugin's settings must be a dataclass whose leaf fields have defaults and a type the command
    line parses (:data:`LEAF_TYPES`, nested dataclasses allowed)."""
    if not (isinstance(cls, type) and is_dataclass(cls)):
        raise ConfigError(f"{owner}: settings must be a dataclass class, got {cls!r}")
    try:
        leaves = _leaf_fields(cls)
        cls()
    except (NameError, TypeError) as exc:  # an annotation that does not resolve, a field without a default
        raise ConfigError(f"{owner}: settings {cls.__qualname__} must resolve its annotations and have a "
                          f"default for every field: {exc}") from None
    bad = {key: hint for key, (hint, _) in leaves.items() if hint not in LEAF_TYPES}
    if bad:
        raise ConfigError(f"{owner}: settings {cls.__qualname__} has fields of types the command line cannot set: "
                          + ", ".join(f"{k}: {getattr(h, '__name__', h)}" for k, h in bad.items())
                          + "; use bool, int, float, str or tuple[float, ...]")
    files = [key for key, (hint, f) in leaves.items() if f.metadata.get(FILE) and hint is not str]
    if files:
        raise ConfigError(f"{owner}: settings {cls.__qualname__} marks fields that are not str as files: "
                          + ", ".join(files))


def with_section(cfg: Config, name: str, settings: Any) -> Config:
    """``cfg`` with plugin ``name``'s settings section (kept as it is when ``cfg`` has it already)."""
    if name in cfg.plugins:
        if type(cfg.plugins[name]) is not type(settings):
            raise ConfigError(f"two plugins named {name!r} declare settings ({type(cfg.plugins[name]).__qualname__} "
                              f"and {type(settings).__qualname__}); give one of them another name")
        return cfg
    top = name.split(".")[0]
    if top in {f.name for f in fields(Config)}:
        raise ConfigError(f"plugin {name!r}: its settings would mix with the built-in keys of {top!r}; "
                          "rename the plugin")
    return dataclasses.replace(cfg, plugins={**cfg.plugins, name: settings})


def _parse(key: str, text: str, hint: Any) -> Any:
    """Parse a command-line string as the field's type (bool, int, float, str or float tuple)."""
    try:
        if hint is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        # tuple[float, ...]
        return tuple(float(t) for t in text.strip("()[] ").split(",") if t.strip())
    except ValueError:
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{key}: {text!r} is not a valid {name}") from None


def _check_type(key: str, value: Any, hint: Any) -> None:
    """Values that arrive already typed (dict overrides, rebuilt configs) must fit the field too."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {bool: isinstance(value, bool), int: number and isinstance(value, int),
            float: number, str: isinstance(value, str)}.get(
        hint, isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value))
    if not fits:
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(f"{key}: {value!r} is not a valid {name}")


def _replaced(node: Any, parts: list[str], value: Any) -> Any:
    """A copy of the dataclass ``node`` with the field at ``parts`` set (the sections on the path copied)."""
    child = value if len(parts) == 1 else _replaced(getattr(node, parts[0]), parts[1:], value)
    return dataclasses.replace(node, **{parts[0]: child})


def set_value(cfg: Config, key: str, value: Any) -> Config:
    """A copy of ``cfg`` with one dotted key set; strings are parsed as the field's type."""
    types = leaf_types(cfg)
    if key not in types:
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(types))} (a plugin's "
                          "settings are keys of the plugins the run uses: its methods and estimator)")
    if isinstance(value, str) and types[key] is not str:
        value = _parse(key, value, types[key])
    _check_type(key, value, types[key])
    section = next((name for name in cfg.plugins if key.startswith(name + ".")), None)
    if section is None:
        return _replaced(cfg, key.split("."), value)
    settings = _replaced(cfg.plugins[section], key[len(section) + 1:].split("."), value)
    return dataclasses.replace(cfg, plugins={**cfg.plugins, section: settings})


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``key=value``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def apply_overrides(cfg: Config, assignments: list[str] | dict[str, Any]) -> Config:
    """Apply ``["key=value", ...]`` or ``{key: value}`` overrides in order."""
    items = assignments.items() if isinstance(assignments, dict) else map(parse_assignment, assignments)
    for key, value in items:
        cfg = set_value(cfg, key, value)
    return cfg
