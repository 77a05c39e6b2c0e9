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


MAX_WIDTH_PX = 1800
"""Widest saved PNG (pixels): wider figures are saved at a lower dpi so that a slide
shows them without shrinking the text below readability."""


def save(fig, path: str | Path) -> Path:
    """Save `fig` as PNG at `path` (folders are created) and close it.

    Figures wider than `MAX_WIDTH_PX` at the style's dpi are saved at the dpi that
    makes them exactly that wide."""
    path = Path(path).with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    dpi = min(RC["savefig.dpi"], MAX_WIDTH_PX / fig.get_figwidth())
    with style():
        fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def log_ticks(ax, which: str = "both") -> None:
    """Give every log-scaled axis of `ax` (`which` = "x", "y" or "both") several
    labelled ticks: at 1, 1.2, 1.5, 2, … × 10^k when the axis spans less than a decade,
    at 1, 2, 3, 5 × 10^k up to about one and a half,
    at 1 and 3 × 10^k up to about three decades (two on an x axis, whose labels sit
    side by side), at decades beyond; labels in plain
    numbers between 0.01 and 1000 and as m × 10^k outside."""
    from matplotlib import ticker

    for name in ("x", "y") if which == "both" else (which,):
        axis = getattr(ax, f"{name}axis")
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(getattr(ax, f"get_{name}lim")())
        decades = np.log10(hi / lo) if lo > 0 else np.inf
        if decades <= 0.6:
            subs: tuple = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
        elif decades <= 1.6:
            subs = (1.0, 2.0, 3.0, 5.0)
        elif decades <= (3.5 if name == "y" else 2.2):  # "3 × 10^k" labels are wide
            subs = (1.0, 3.0)
        else:
            subs = (1.0,)
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=10))
        plain = 1e-2 <= lo and hi <= 1e3

        def fmt(v, _, plain=plain):
            if v <= 0:
                return ""
            if plain:
                return f"{v:g}"
            e = int(np.floor(np.log10(v) + 1e-9))
            m = v / 10.0**e
            if abs(m - 1) < 1e-6:
                return f"$10^{{{e}}}$"
            return f"${m:.2g}\\times10^{{{e}}}$"

        axis.set_major_formatter(ticker.FuncFormatter(fmt))
        axis.set_minor_locator(
            ticker.LogLocator(base=10, subs=np.arange(2, 10) * 1.0, numticks=10)
        )
        axis.set_minor_formatter(ticker.NullFormatter())


def legend_outside(ax, *, where: str = "below", ncol: int = 2, **kwargs):
    """A legend outside the axes, `where` = "below" (centred under the x label) or
    "right" (beside the axes), so that it never covers data."""
    if where == "below":
        kw = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol)
    elif where == "right":
        kw = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1)
    else:
        raise ValueError(f"where must be 'below' or 'right', got {where!r}.")
    kw.update(kwargs)
    return ax.legend(**kw)


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

    The fitted exponent is written in the legend. A slope is fitted only through at
    least three positive points; with fewer the points are drawn unfitted and the
    slope returned is NaN. **Returns** the slope.
    """
    x = np.asarray(x, float)
    yv = np.asarray(y, float)
    if int(np.sum((x > 0) & (yv > 0) & np.isfinite(x) & np.isfinite(yv))) < 3:
        ax.loglog(x, yv, marker, color=color, label=f"{label} (< 3 points: no fit)")
        return float("nan")
    p, c = fit_slope(x, y)
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
