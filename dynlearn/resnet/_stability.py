"""Stability diagnostics: layer-Jacobian spectra times h, to be compared with the
scheme's stability region {z : scheme.amplification(z) <= 1}."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._field import ResidualField
from ._schemes import AbstractScheme, get_scheme
from ._solve import _check_depth, _check_state, discretise


def jacobian_spectrum(
    field: ResidualField,
    y0: Array,
    scheme: str | AbstractScheme = "euler",
    depth: int = 16,
) -> tuple[Array, Array]:
    r"""Eigenvalues of the layer Jacobians $h\,\partial f/\partial x(x_n, θ_n)$ along
    the depth-`depth` network started at `y0` (Haber & Ruthotto 2017, §3).

    The network is stable where every $hλ$ lies in the scheme's stability region,
    i.e. `scheme.amplification(h * λ) <= 1` (e.g. $|1 + hλ| \le 1$ for the Euler
    ResNet; the segment $(-i, i)$ for the midpoint network).

    **Returns** `(ts, z)`: the layer depths $t_n$, shape `(N,)`, and the complex
    $z = hλ$, shape `(N, d)`. Uses `jnp.linalg.eigvals` (non-symmetric
    eigenproblem).
    """
    scheme = get_scheme(scheme)
    _check_depth(depth)
    y0 = jnp.asarray(y0)
    _check_state(y0)
    return _spectrum(field, y0, scheme, depth)


@eqx.filter_jit
def _spectrum(field, y0, scheme, depth):
    sol = discretise(field, y0, scheme, depth, trajectory=True)
    h = field.T / depth
    ts, xs = sol.ts[:-1], sol.ys[:-1]

    def jac(t, x):
        return jax.jacfwd(lambda u: field(t, u, t + 0.5 * h))(x)

    J = jax.vmap(jac)(ts, xs)
    return ts, h * jnp.linalg.eigvals(J)
