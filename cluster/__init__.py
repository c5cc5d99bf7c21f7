"""Orchestration: Ray actors, the sweep driver and MLflow tracking (the only MLflow writer).

Python API (what ``zssrgan run`` calls)::

    from cluster.jobs import SweepSpec
    from cluster.driver import run_sweep
    summary = run_sweep(SweepSpec(data=["images/"], methods=["bicubic", "kernelgan-zssr"], scales=[2]))

Submodules are imported on use, so reading results (``cluster.tracking``) does not load Ray.
"""
