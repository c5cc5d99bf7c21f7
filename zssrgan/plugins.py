"""Methods and kernel estimators from other packages, found by name.

A name resolves to the built-in table's row first, then to the entry point of that name in the
kind's group (``zssrgan.methods``, ``zssrgan.estimators``), then, when it reads
``module:function``, to that attribute of that module. What loads is a function or a full row
(:class:`~zssrgan.methods.Method`, :class:`~zssrgan.estimators.Estimator`); a bare function
becomes a row described by its docstring's first line that reads every built-in config section.
The contract (docs/plugins.md) is checked as the plugin loads, so one that cannot serve fails with
its reason before any job runs. A row's ``settings`` dataclass becomes the config section named
after the plugin (``<name>.<field>``), which its jobs read and its function receives as the
keyword ``settings``.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import site
import sys
import sysconfig
import typing
from dataclasses import dataclass, is_dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Mapping, Optional

from .config import Config, ConfigError, check_settings
from .errors import UserError

# what a bare function is taken to read: every built-in section
BUILTIN_SECTIONS = tuple(f"{name}." for name, value in vars(Config()).items() if is_dataclass(value))
REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
OWN_PACKAGES = ("zssrgan", "cluster")  # every worker runs them already: never shipped


class PluginError(UserError, ValueError):
    """A plugin that cannot be loaded or does not fit the contract; the message says which and why."""


@dataclass(frozen=True)
class Kind:
    """One extension point: its built-in table, its entry-point group and its contract."""

    noun: str  # "method", "kernel estimator"
    group: str
    table: Mapping[str, Any]
    row: type  # a NamedTuple with fn, description, reads and settings
    positional: tuple[str, ...]  # the contract's required parameters, passed by position
    keywords: tuple[str, ...]  # its optional parameters, passed by keyword
    returns: type
    unknown: type  # the error of an unknown name

    def contract(self, settings: bool = False) -> str:
        keywords = self.keywords + (("settings",) if settings else ())
        return (f"fn({', '.join(self.positional)}, {', '.join(k + '=None' for k in keywords)}) -> "
                f"{self.returns.__name__}")


_loaded: dict[tuple[str, str], Any] = {}  # (group, name) -> row: a plugin loads once per process


def resolve(kind: Kind, name: str) -> Any:
    """The row of ``name``: built-in, entry point or ``module:function``, in that order."""
    if name in kind.table:
        return kind.table[name]
    if (kind.group, name) not in _loaded:
        _loaded[kind.group, name] = _load(kind, name)
    return _loaded[kind.group, name]


def _entry_points(group: str) -> dict[str, list[EntryPoint]]:
    out: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=group):
        out.setdefault(point.name, []).append(point)
    return out


def _package(point: EntryPoint) -> str:
    return f"{point.dist.name} {point.dist.version}" if point.dist is not None else "an unknown package"


def _origin(point: EntryPoint) -> str:
    return f"entry point {point.name} = {point.value} of {_package(point)}"


def _load(kind: Kind, name: str) -> Any:
    points = _entry_points(kind.group).get(name, [])
    if len({p.value for p in points}) > 1:
        raise PluginError(f"{kind.noun} {name!r} is declared by several installed packages: "
                          + "; ".join(map(_origin, points)) + "; uninstall all but one")
    if points:
        origin = _origin(points[0])
        try:
            obj = points[0].load()
        except Exception as exc:
            raise PluginError(f"{kind.noun} {name!r} ({origin}) failed to load: {type(exc).__name__}: {exc}") from exc
    elif ":" in name:
        obj, origin = _import_reference(kind, name), f"module:function reference {name}"
    else:
        plugins = [n for n in _entry_points(kind.group) if n not in kind.table]
        raise kind.unknown(f"unknown {kind.noun} {name!r}; choose one of: {', '.join([*kind.table, *plugins])}, "
                           "or a plugin's module:function")
    return checked_row(kind, name, obj, origin)


def _import_reference(kind: Kind, name: str) -> Any:
    """The object a ``module:function`` (``module:Class.attribute``) reference names; the module is
    looked for on the Python path and in the current folder."""
    if not REFERENCE.fullmatch(name):
        example = f"mymodule:my_{kind.row.__name__.lower()}"
        raise PluginError(f"{kind.noun} {name!r}: expected a module:function reference, e.g. {example}")
    module_name, _, attribute = name.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:  # the zssrgan script, unlike python -m, leaves it out
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        missing = isinstance(exc, ModuleNotFoundError) and f"{module_name}.".startswith(f"{exc.name}.")
        hint = " (is it on the Python path, or in the current folder?)" if missing else ""
        raise PluginError(f"{kind.noun} {name!r}: cannot import module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}{hint}") from exc
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{kind.noun} {name!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) "
                              f"has no attribute {attribute!r}")
        obj = getattr(obj, part)
    return obj


def checked_row(kind: Kind, name: str, obj: Any, origin: str) -> Any:
    """``obj`` (a function or a row) as a row of ``kind`` that fits the contract; a row's settings
    section is added to what it reads."""
    if isinstance(obj, kind.row):
        row = obj
    elif callable(obj):
        summary = (inspect.getdoc(obj) or "").strip().split("\n")[0]
        row = kind.row(fn=obj, description=summary or f"plugin ({origin})", reads=BUILTIN_SECTIONS)
    else:
        raise PluginError(f"{kind.noun} {name!r} ({origin}) is a {type(obj).__name__}, neither a function nor "
                          f"a {kind.row.__name__}; the contract: {kind.contract()}")
    if not callable(row.fn):
        raise PluginError(f"{kind.noun} {name!r} ({origin}): its {kind.row.__name__}'s fn is a "
                          f"{type(row.fn).__name__}, not a function; the contract: {kind.contract()}")
    _check_signature(kind, name, origin, row)
    if row.settings is None:
        return row
    try:
        check_settings(row.settings, f"{kind.noun} {name!r} ({origin})")
    except ConfigError as exc:
        raise PluginError(str(exc)) from None
    return row._replace(reads=row.reads + (name + ".",))


def _check_signature(kind: Kind, name: str, origin: str, row: Any) -> None:
    """The function must take the contract's arguments as the runner passes them; a return
    annotation, where there is one, must name the contract's result."""
    contract = kind.contract(settings=row.settings is not None)
    try:
        signature = inspect.signature(row.fn)
    except (TypeError, ValueError):  # a callable without introspectable parameters: checked when called
        return
    keywords = kind.keywords + (("settings",) if row.settings is not None else ())
    try:
        signature.bind(*kind.positional, **dict.fromkeys(keywords))
    except TypeError as exc:
        raise PluginError(f"{kind.noun} {name!r} ({origin}): {getattr(row.fn, '__qualname__', 'fn')}{signature} "
                          f"does not fit the contract {contract}: {exc}") from None
    try:
        returns = typing.get_type_hints(row.fn).get("return")
    except Exception:  # an annotation that does not resolve here says nothing either way
        returns = None
    if isinstance(returns, type) and not issubclass(returns, kind.returns):
        raise PluginError(f"{kind.noun} {name!r} ({origin}) is annotated to return {returns.__name__}; "
                          f"the contract: {contract}")


def settings_keyword(row: Any, name: str, cfg: Config) -> dict[str, Any]:
    """``{"settings": ...}`` for a row that declares settings (``cfg``'s section, else the defaults)."""
    if row.settings is None:
        return {}
    return {"settings": cfg.plugins[name] if name in cfg.plugins else row.settings()}


def listing(kind: Kind) -> dict[str, str]:
    """The installed plugins of ``kind`` (entry points) and their descriptions, or why one is unusable."""
    out = {}
    for name, points in _entry_points(kind.group).items():
        packages = ", ".join(map(_package, points))
        if name in kind.table:
            out[f"{name} (plugin)"] = f"not used: the built-in {kind.noun} has this name [{packages}]"
            continue
        try:
            out[name] = f"{resolve(kind, name).description} [plugin: {packages}]"
        except (PluginError, ConfigError) as exc:
            out[name] = f"cannot be used: {exc}"
    return out


def _installed_roots() -> list[Path]:
    paths = [sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths += site.getsitepackages() + [site.getusersitepackages()]
    return [Path(p).resolve() for p in paths]


def local_module(kind: Kind, name: str) -> Optional[Path]:
    """The file or package folder of a ``module:function`` plugin's top-level module when it is the
    user's own (not installed, not ours): what the workers of a cluster need shipped."""
    resolve(kind, name)
    if name in kind.table or name in _entry_points(kind.group):
        return None
    top = sys.modules[name.partition(":")[0].split(".")[0]]
    locations = list(getattr(top, "__path__", [])) or [top.__file__]
    if top.__name__ in OWN_PACKAGES or len(locations) != 1 or locations[0] is None:
        return None  # ours, or a namespace package spread over several folders
    path = Path(locations[0]).resolve()
    return None if any(path.is_relative_to(root) for root in _installed_roots()) else path
