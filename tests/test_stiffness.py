"""The stiffness diagnostic (StiffnessWarning) and the automatic solver choice."""

import warnings

import jax.numpy as jnp
import pytest
from helpers import stiff_quadratic

import dynlearn as dl
from dynlearn._stiffness import auto_costs
from dynlearn.stiff import RKC2


def _stiffness_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [w for w in caught if issubclass(w.category, dl.StiffnessWarning)]


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_faithful_stiff_solve_does_not_warn(offset):
    """Tsit5 at rtol 1e-6 on a stiff quadratic over a long horizon rides its
    stability limit near the minimum: the stiff modes oscillate at the tolerance's
    level and the loss rises by ~1e-12 (Φ0 = 5.5) on hundreds of steps, yet the
    states are gradient flow's to 4e-7. Formerly that warned ("the loss increased on
    276 accepted steps"). With a nonzero minimum (offset) the loss values carry
    round-off of eps·|Φ_min| on every step, which must not count either."""
    loss, exact, w0 = stiff_quadratic(1e2)
    rtol = 1e-6
    tr, caught = _stiffness_warnings(
        lambda: dl.gradient_flow(
            lambda w: loss(w) + offset, w0, 500.0, rtol=rtol, atol=1e-8, num_saves=11
        )
    )
    err = max(
        float(jnp.max(jnp.abs(w - exact(t, w0)))) for t, w in zip(tr.ts, tr.params)
    )
    assert err < 10 * rtol, err  # measured 4.1e-7: a faithful solve
    assert tr.stats["dt_sharpness_over_limit"] > 0.9  # it did ride the limit
    assert not caught, str(caught[0].message)
    assert tr.stats["loss_rise_fraction"] < 1e-8  # measured 2.7e-10 (0 with offset)


def test_too_loose_stiff_solve_still_warns():
    """At rtol = atol = 1e-4 on sharpness 400 the loss rises undo 1e-3 of the
    descent (17% at 1e-3): not gradient flow, and the warning names the cause."""
    H = jnp.diag(jnp.array([400.0, 1e-2]))
    loss = lambda p: 0.5 * p @ (H @ p)
    tr, caught = _stiffness_warnings(
        lambda: dl.gradient_flow(loss, jnp.ones(2), 200.0, rtol=1e-4, atol=1e-4)
    )
    assert caught and "stability limit" in str(caught[0].message)
    assert tr.stats["loss_rise_fraction"] > 1e-4  # measured 9.5e-4


def _gradient_equivalents(stats):
    return stats["num_gradient_evals"] + 2 * stats["num_hvps"]


def test_auto_is_never_much_dearer_than_the_cheaper_solver():
    """solver="auto" picks by a cost model at the requested rtol: on a grid of
    λ_max·T and rtol it costs at most 1.2× the cheaper of Tsit5 and RKC2
    (gradient-equivalents = gradients + 2·HVPs). Formerly it chose RKC2 whenever
    λ_max·T > 200, e.g. at λ_max·T = 250, rtol 1e-7: 2867 against Tsit5's 655."""
    loss, _, w0 = stiff_quadratic(1e3, 8)  # sharpness 10
    kw = dict(save_params=False, check_stiffness=False, num_saves=2, atol=1e-8)
    worst = []
    for lam_t in (50.0, 250.0, 1000.0, 1e4):
        for rtol in (1e-4, 1e-7):
            t1 = lam_t / 10.0
            auto = dl.gradient_flow(loss, w0, t1, solver="auto", rtol=rtol, **kw)
            other = "tsit5" if auto.stats["solver"] == "RKC2" else RKC2()
            alt = dl.gradient_flow(loss, w0, t1, solver=other, rtol=rtol, **kw)
            assert alt.stats["solver"] != auto.stats["solver"]
            a, b = _gradient_equivalents(auto.stats), _gradient_equivalents(alt.stats)
            worst.append((a / min(a, b), lam_t, rtol, auto.stats["solver"], a, b))
    assert max(worst)[0] <= 1.2, max(worst)
    # The choice follows the tolerance: at λ_max·T = 1000, RKC2 at 1e-4, Tsit5 at 1e-7.
    chosen = {(w[1], w[2]): w[3] for w in worst}
    assert chosen[(1000.0, 1e-4)] == "RKC2" and chosen[(1000.0, 1e-7)] == "Tsit5"
    assert chosen[(50.0, 1e-4)] == "Tsit5" and chosen[(1e4, 1e-7)] == "RKC2"


def test_auto_cost_model_shape():
    # Tsit5's cost grows as λ_max·T, RKC2's far slower; RKC2's falls with rtol.
    lo, hi = auto_costs(10.0, 10.0, 1e-6), auto_costs(10.0, 1e4, 1e-6)
    assert hi["Tsit5"] / lo["Tsit5"] > 500
    assert 1 < hi["RKC2"] / lo["RKC2"] < 0.01 * hi["Tsit5"] / lo["Tsit5"]
    assert auto_costs(10.0, 100.0, 1e-3)["RKC2"] < auto_costs(10.0, 100.0, 1e-8)["RKC2"]
