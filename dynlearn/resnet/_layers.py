r"""Residual functions $f(x, θ)$ for one layer, built from the shared
[`dynlearn.Affine`][] map.

Any `eqx.Module` mapping one unbatched state `x` of shape `(d,)` to a vector of the same
shape can serve as a layer (e.g. `dynlearn.MLP(d, d, width, depth)`). The three classes
here are the structured layers of Haber & Ruthotto (2017, arXiv:1705.03341) and Chang et
al. (2018, arXiv:1709.03698) whose Jacobian spectra are controlled by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._network import MLP, Affine, get_activation


def _affine(in_size: int, out_size: int, sigma_w: float, sigma_b: float, key) -> Affine:
    # A depth-0 shared MLP is exactly one affine map with dynlearn's initialisation.
    return MLP(
        in_size, out_size, 1, 0, sigma_w=sigma_w, sigma_b=sigma_b, key=key
    ).layers[0]


def _check_dim(name: str, v) -> None:
    if not isinstance(v, int) or v < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")


class SymmetricLayer(eqx.Module):
    r"""$f(x) = s\,K^\top σ(K x + b)$ with $K$ of shape `(width, dim)`.

    With `sign=-1` the Jacobian $-K^\top \mathrm{diag}(σ') K$ is symmetric negative
    semi-definite for monotone σ (Haber & Ruthotto 2017, eq. 3.4; the leapfrog
    network's acceleration). Chang et al.'s Hamiltonian network uses one `sign=+1`
    and one `sign=-1` copy (see [`dynlearn.resnet.HamiltonianLayer`][]).
    """

    affine: Affine
    activation: Callable[[Array], Array] = eqx.field(static=True)
    sign: float = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int,
        activation: str | Callable = "tanh",
        *,
        sign: float = -1.0,
        sigma_w: float = 1.0,
        sigma_b: float = 0.0,
        key: PRNGKeyArray,
    ):
        _check_dim("dim", dim)
        _check_dim("width", width)
        self.affine = _affine(dim, width, sigma_w, sigma_b, key)
        self.activation = get_activation(activation)
        self.sign = float(sign)

    def __call__(self, x: Array) -> Array:
        a = self.affine
        u = self.activation(a(x))
        return self.sign * a.weight_scale * (a.weight.T @ u)


class AntisymmetricLayer(eqx.Module):
    r"""$f(x) = σ((W - W^\top - γ I) x + b)$: the stabilised layer of Haber & Ruthotto
    (2017, §3.2).

    $W - W^\top$ has a purely imaginary spectrum, so the continuous dynamics neither
    explode nor vanish; forward Euler is unstable for purely imaginary $hλ$
    ($|1 + ihω| > 1$), and the damping $γ \ge 0$ moves the spectrum of the Jacobian
    into the left half plane ($|1 + hλ| \le 1 \iff h(γ^2 + ω^2) \le 2γ$ for
    $λ = -γ + iω$).
    """

    affine: Affine
    activation: Callable[[Array], Array] = eqx.field(static=True)
    damping: float = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        activation: str | Callable = "tanh",
        *,
        damping: float = 0.0,
        sigma_w: float = 1.0,
        sigma_b: float = 0.0,
        key: PRNGKeyArray,
    ):
        _check_dim("dim", dim)
        if not damping >= 0:
            raise ValueError(f"`damping` γ must be >= 0, got {damping!r}.")
        self.affine = _affine(dim, dim, sigma_w, sigma_b, key)
        self.activation = get_activation(activation)
        self.damping = float(damping)

    def __call__(self, x: Array) -> Array:
        a = self.affine
        w = a.weight_scale * (a.weight - a.weight.T)
        z = w @ x - self.damping * x
        if a.bias is not None:
            z = z + a.bias_scale * a.bias
        return self.activation(z)


class HamiltonianLayer(eqx.Module):
    r"""The two-half layer of Chang et al. (2018, eq. 6), state $x = (y, z)$:

    $$\dot y = K_1^\top σ(K_1 z + b_1), \qquad \dot z = -K_2^\top σ(K_2 y + b_2).$$

    Its Jacobian $\begin{pmatrix}0 & A\\ -B & 0\end{pmatrix}$ with $A, B$ symmetric
    positive semi-definite has a purely imaginary spectrum
    $λ = \pm i\sqrt{μ(AB)}$. `dim` (the full state) must be even; `width` is the
    number of rows of each $K$.
    """

    f_y: SymmetricLayer
    f_z: SymmetricLayer

    def __init__(
        self,
        dim: int,
        width: int,
        activation: str | Callable = "tanh",
        *,
        sigma_w: float = 1.0,
        sigma_b: float = 0.0,
        key: PRNGKeyArray,
    ):
        _check_dim("dim", dim)
        if dim % 2:
            raise ValueError(
                f"HamiltonianLayer splits the state into two halves (y, z), so `dim` "
                f"must be even, got {dim}. Lift the input to an even dimension first."
            )
        k1, k2 = jax.random.split(key)
        kw = dict(sigma_w=sigma_w, sigma_b=sigma_b)
        self.f_y = SymmetricLayer(dim // 2, width, activation, sign=1.0, key=k1, **kw)
        self.f_z = SymmetricLayer(dim // 2, width, activation, sign=-1.0, key=k2, **kw)

    def split(self, x: Array) -> tuple[Array, Array]:
        """Split a state of shape `(2m,)` into its halves `(y, z)`."""
        if x.ndim != 1 or x.shape[0] % 2:
            raise ValueError(
                "The Hamiltonian network needs a state of even dimension (two halves "
                f"y, z); got shape {x.shape}."
            )
        m = x.shape[0] // 2
        return x[:m], x[m:]

    def __call__(self, x: Array) -> Array:
        y, z = self.split(x)
        return jnp.concatenate([self.f_y(z), self.f_z(y)])
