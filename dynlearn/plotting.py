"""Plotting helpers: the one module of dynlearn that imports matplotlib.

One consistent style for every scenario: readable at talk size, colour-blind-safe
palette, log axes with fitted slopes annotated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._analysis import fit_slope  # noqa: E402


PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
"""Okabe–Ito colour-blind-safe colours, in the order lines are drawn."""

RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "lines.linewidth": 1.8,
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying dynlearn's matplotlib style."""
    with matplotlib.rc_context(RC):
        yield


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 5.0, height: float = 3.8):
    """A styled figure with an `nrows × ncols` grid of axes (always a 2-D array)."""
    with style():
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(width * ncols, height * nrows),
            squeeze=False,
            layout="constrained",
        )
    return fig, axes


def save(fig, path: str | Path) -> Path:
    """Save `fig` as PNG at `path` (folders are created) and close it."""
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    with style():
        fig.savefig(path)
    plt.close(fig)
    return path


def loglog_slope(
    ax,
    x: Sequence[float],
    y: Sequence[float],
    *,
    label: str,
    color: str | None = None,
    marker: str = "o",
) -> float:
    """Plot `y` vs `x` on log-log axes with its least-squares fitted power law.

    The fitted exponent is written in the legend. **Returns** the slope.
    """
    p, c = fit_slope(x, y)
    x = np.asarray(x, float)
    (line,) = ax.loglog(x, y, marker, color=color, label=f"{label} (slope {p:.2f})")
    xs = np.geomspace(x.min(), x.max(), 50)
    ax.loglog(xs, c * xs**p, "-", color=line.get_color(), alpha=0.6, lw=1.2)
    return p


def reference_slope(ax, x0: float, y0: float, slope: float, *, decades: float = 1.0):
    """Draw a dotted reference line of the given slope through (x0, y0)."""
    xs = np.array([x0, x0 * 10**decades])
    ax.loglog(xs, y0 * (xs / x0) ** slope, ":", color="0.4", lw=1.2)
    ax.annotate(
        f"slope {slope:g}",
        (xs[-1], y0 * (xs[-1] / x0) ** slope),
        fontsize=8,
        color="0.3",
    )


def spins(ax, configuration, side: int | None = None) -> None:
    """Show one ±1 configuration (or values in [−1, 1], e.g. RBM means) on `ax` as a
    side×side image: +1 black, −1 white, no ticks or grid. `side` defaults to the
    square root of the number of sites."""
    c = np.asarray(configuration, float)
    side = int(round(np.sqrt(c.size))) if side is None else side
    ax.imshow(c.reshape(side, -1), cmap="gray_r", vmin=-1, vmax=1, interpolation="none")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
