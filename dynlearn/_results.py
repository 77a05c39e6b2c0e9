"""The status codes of a run."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp


class RESULTS(eqx.Enumeration):
    """How a run ended: the `result` of a [`dynlearn.Trajectory`][].

    Compare with `traj.result == dynlearn.RESULTS.successful`; under `jax.vmap` the
    comparison is elementwise.
    """

    successful = ""
    nonfinite_params = "the parameters became non-finite (NaN/inf)"
    nonfinite_loss = "the loss became non-finite (NaN/inf) at finite parameters"
    diverged = "the parameters exceeded divergence_threshold in magnitude"
    max_steps_reached = "the step budget max_steps was used up"
    dt_collapsed = "the solver's step size collapsed"
    solver_failed = "the solver failed (e.g. a Newton iteration did not converge)"


def result_item(code: Any) -> Any:
    """A `RESULTS` item holding the integer code(s) `code`."""
    item = RESULTS.successful
    return eqx.tree_at(lambda r: r._value, item, jnp.asarray(code, jnp.int32))
