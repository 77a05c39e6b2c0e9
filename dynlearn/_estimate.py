"""A Monte Carlo estimate with its error bar, the one type every module returns."""

from __future__ import annotations

from typing import Any, NamedTuple


class Estimate(NamedTuple):
    """A Monte Carlo estimate `mean ± stderr`: the estimate and its standard error (one
    standard deviation of the estimator), of the same shape. Returned by the Ising
    chain averages and the correlation length of `dynlearn.rg`, and by the ensemble
    statistics of `dynlearn.width`; unpacks as `mean, stderr = estimate`."""

    mean: Any
    stderr: Any
