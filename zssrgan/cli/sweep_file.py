"""Sweep files: ``zssrgan run --config sweep.yaml`` reads the options of ``zssrgan run`` from one
versionable YAML file.

The keys are the flags' names with underscores (``tracking_uri`` for ``--tracking-uri``); ``set``
maps dotted config keys to values and ``grid`` maps them to lists of values. The file is checked
as a whole before anything starts (unknown keys, wrong types, unknown methods, estimators or config
keys are refused, naming the file, the key and the valid choices; config keys are checked once the
run's plugins are known, since a plugin's settings are config keys too). Relative ``data`` paths,
and relative files named by config keys (``auto.blur_model``, ``fkp.prior``, a plugin's
``file_field`` settings), are relative to the file's folder, so a sweep file and its data can
move together. A key set to null (or left empty) keeps its default, as a flag not given does.
Config values are turned into the text the command line would give (``--set key=text``), so a
file and the equivalent flags make the same configuration and the same job keys.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import yaml

from cluster.jobs import ESTIMATE, absolute_files

from ..config import PRESETS, Config, ConfigError, file_keys, parse_assignment, set_value
from ..device import DEVICES
from ..errors import UserError
from ..estimators import get_estimator
from ..methods import get_method


class SweepFileError(UserError, ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


def _wrong(what: str, value: Any) -> TypeError:
    return TypeError(f"expected {what}, got {value!r} ({type(value).__name__})")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _wrong("a non-empty string", value)
    return value.strip()


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong("an integer", value)
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong("a number", value)
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong("true or false", value)
    return value


def _items(value: Any, what: str) -> list:
    """A YAML list, a comma-separated string (as the flag takes it) or one value, as a list."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    elif not isinstance(value, list):
        value = [value]
    if not value:
        raise _wrong(f"a non-empty list of {what}", value)
    return value


def _integers(value: Any) -> list[int]:
    try:
        return [int(v) if isinstance(v, str) else _integer(v) for v in _items(value, "integers")]
    except (TypeError, ValueError):
        raise _wrong('a list of integers (or "2,4")', value) from None


def _strings(value: Any, what: str) -> list[str]:
    items = _items(value, what)
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise _wrong(f"a list of {what}", value)
    return [v.strip() for v in items]


def _choice(choices) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of: {', '.join(choices)}")
        return value
    return check


def _config_text(key: str, value: Any) -> str:
    """A config value as ``--set key=text`` writes it (:func:`resolve` checks it against the
    config); a list of numbers is a tuple field."""
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in value):
        text = ",".join(map(str, value))
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise _wrong(f"a number, true/false, a string or a list of numbers for {key}", value)
    return text


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _wrong(f"a mapping of dotted config keys to {what}", value)
    return value


def _set(value: Any) -> list[str]:
    return [f"{key}={_config_text(key, item)}" for key, item in _mapping(value, "values").items()]


def _grid(value: Any) -> dict[str, list[str]]:
    """``{key: [values]}``, or ``key: "v1,v2"`` as ``--grid`` takes it."""
    grid = {}
    for key, items in _mapping(value, "lists of values").items():
        if items in ([], ""):
            raise ValueError(f"{key} has no values")
        grid[key] = [_config_text(key, v) for v in _items(items, "values")]
    return grid


def _methods(value: Any) -> list[str]:
    names = _strings(value, 'method names (or "a,b")')
    for name in names:
        if name != ESTIMATE:
            get_method(name)
    return names


def _estimator(value: Any) -> list[str]:
    get_estimator(_text(value))
    return [f"estimator={_text(value)}"]


# file key -> (the SweepSpec field it sets, check returning the field's value), in the order the
# file's config overrides apply: `set`, then `device` and `estimator`; the data paths are resolved
# against the file's folder by load()
FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "data": ("data", lambda v: _strings(v, "paths")),
    "methods": ("methods", _methods),
    "scales": ("scales", _integers),
    "seeds": ("seeds", _integers),
    "seed": ("seeds", lambda v: [_integer(v)]),
    "preset": ("preset", _choice(list(PRESETS))),
    "set": ("overrides", _set),
    "device": ("overrides", lambda v: [f"device={_choice(DEVICES)(v)}"]),
    "estimator": ("overrides", _estimator),
    "grid": ("grid", _grid),
    "real": ("real", _boolean),
    "experiment": ("experiment", _text),
    "tracking_uri": ("tracking_uri", _text),
    "address": ("address", _text),
    "workers": ("workers", _integer),
    "gpus_per_job": ("gpus_per_job", _number),
    "cpus_per_job": ("cpus_per_job", _number),
    "max_retries": ("max_retries", _integer),
    "rerun": ("rerun", _boolean),
}


def load(path: str | Path) -> dict[str, Any]:
    """The file's settings as :class:`~cluster.jobs.SweepSpec` fields, its config keys not yet
    checked and the files they name not yet resolved (:func:`resolve` does both, once the run's
    plugins are known); :class:`SweepFileError` for anything wrong with it."""
    path = Path(path).expanduser()
    if not path.exists() or path.is_dir():  # a pipe (--config <(...)) is read like a file
        raise SweepFileError(f"no sweep file at {path}" + (" (a folder)" if path.is_dir() else ""))
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SweepFileError(f"sweep file {path} is not a text file (UTF-8 YAML)") from None
    except OSError as exc:
        raise SweepFileError(f"cannot read the sweep file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        parts = [(getattr(exc, f"{kind}_mark", None), getattr(exc, kind, None)) for kind in ("context", "problem")]
        said = [f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark else text
                for mark, text in parts if text]
        raise SweepFileError(f"sweep file {path} is not valid YAML: {'; '.join(said) or exc}") from None
    valid = ", ".join(FIELDS)
    if not isinstance(document, dict):
        raise SweepFileError(f"sweep file {path} must be a mapping of keys to values (keys: {valid})")
    if document.get("seed") is not None and document.get("seeds") is not None:
        raise SweepFileError(f"{path}: give either seed or seeds, not both")
    settings: dict[str, Any] = {}
    for key in sorted(document, key=lambda k: list(FIELDS).index(k) if k in FIELDS else -1):
        if key in FIELDS and document[key] is None:
            continue
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key).replace("-", "_"), FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SweepFileError(f"{path}: unknown key {key!r}{hint}; valid keys: {valid}")
        field, check = FIELDS[key]
        try:
            value = check(document[key])
        except (TypeError, ValueError) as exc:  # ConfigError, MethodError and EstimatorError too
            raise SweepFileError(f"{path}: {key}: {exc}") from None
        settings[field] = settings.get(field, []) + value if field == "overrides" else value
    if "data" in settings:
        settings["data"] = [str(path.parent / Path(p).expanduser()) for p in settings["data"]]
    return settings


def resolve(path: str | Path, settings: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """The file's settings (from :func:`load`) with its config overrides (``set``, ``device``,
    ``estimator``) and ``grid`` values checked against ``cfg``, the run's config with the settings
    sections of the plugins it uses (its methods and estimators may come from the command line),
    and the files that config keys name taken from the file's folder, like its data. An unknown
    key or a value its field cannot take is a :class:`SweepFileError` naming the file."""
    path = Path(path).expanduser()
    grid = [f"{key}={text}" for key, texts in settings.get("grid", {}).items() for text in texts]
    for name, assignments in (("set", settings.get("overrides", [])), ("grid", grid)):
        for text in assignments:
            try:
                set_value(cfg, *parse_assignment(text))
            except ConfigError as exc:
                raise SweepFileError(f"{path}: {name}: {exc}") from None
    files, folder, resolved = file_keys(cfg), path.parent.resolve(), dict(settings)
    if "overrides" in settings:
        resolved["overrides"] = [f"{key}={value}" for key, value in
                                 absolute_files(map(parse_assignment, settings["overrides"]), files, folder)]
    if "grid" in settings:
        resolved["grid"] = dict(absolute_files(settings["grid"].items(), files, folder))
    return resolved
