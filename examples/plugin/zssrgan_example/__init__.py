"""An example zssrgan plugin package: one method and one kernel estimator (see README.md)."""
