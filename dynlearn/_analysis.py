"""Small numerical analysis helpers shared by tests, scenarios and users."""

from __future__ import annotations

import numpy as np


def fit_slope(x, y) -> tuple[float, float]:
    """Least-squares fit of $\\log y = p \\log x + \\log C$.

    Used for measured convergence orders (error vs step size) and width scalings.

    **Returns:** `(p, C)`. Raises `ValueError` unless there are at least two points
    with x, y > 0.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise ValueError("fit_slope needs at least two points with x > 0 and y > 0.")
    p, logc = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(p), float(np.exp(logc))
