"""The user's plugins on the workers: which a sweep uses, the modules shipped to the workers, and
the check every worker makes before it takes a job.

An entry-point plugin is an installed package: every node needs it installed. A
``module:function`` plugin whose module is the user's own (a file or package folder found on the
driver's path, not installed) is shipped with Ray's runtime environment (``py_modules``), which
Ray accepts when the sweep starts or joins Ray itself.
"""
from __future__ import annotations

from typing import Optional

from zssrgan.estimators import ESTIMATORS, PLUGINS as ESTIMATOR_PLUGINS, get_estimator
from zssrgan.methods import METHODS, PLUGINS as METHOD_PLUGINS, get_method
from zssrgan.plugins import local_module

from .jobs import ESTIMATE, Sweep


def sweep_plugins(methods: list[str], sweep: Sweep) -> dict[str, list[str]]:
    """The plugin methods and estimators of a sweep of ``methods``: the estimators its configs use
    or hold settings of (a config travels with the settings of every plugin the sweep names)."""
    plugin_methods = set(methods) - set(METHODS) - {ESTIMATE}
    configs = {id(job.cfg): job.cfg for job in sweep.jobs}.values()
    named = {cfg.estimator for cfg in configs} | {name for cfg in configs for name in cfg.plugins}
    return {"methods": sorted(plugin_methods), "estimators": sorted(named - plugin_methods - set(ESTIMATORS))}


def shipped_modules(plugins: dict[str, list[str]]) -> list[str]:
    """The user's own modules of the sweep's ``module:function`` plugins, for ``py_modules``."""
    paths = {local_module(METHOD_PLUGINS, name) for name in plugins["methods"]}
    paths |= {local_module(ESTIMATOR_PLUGINS, name) for name in plugins["estimators"]}
    return sorted(str(path) for path in paths if path is not None)


def load_problems(plugins: dict[str, list[str]]) -> list[str]:
    """Why this process cannot load the sweep's plugins (empty when it can): what a worker checks."""
    problems = []
    for names, get in ((plugins["methods"], get_method), (plugins["estimators"], get_estimator)):
        for name in names:
            try:
                get(name)
            except ValueError as exc:
                problems.append(str(exc))
    return problems


def unusable(host: str, problems: list[str], unshipped: Optional[list[str]]) -> str:
    """The error of a sweep whose workers cannot load its plugins, with what to do about it."""
    if unshipped:
        hint = ("Ray was running before the sweep started, so the sweep could not ship the modules of its "
                f"module:function plugins: start Ray with runtime_env={{'py_modules': {unshipped}}}, or let the "
                "sweep start or join it")
    else:
        hint = ("A plugin from an installed package (an entry point, or a module:function of an installed "
                "module) must be installed on every node; a module of your own is shipped to the workers")
    return f"the workers cannot load the plugins this sweep uses (checked on {host}): {' | '.join(problems)}. {hint}"
