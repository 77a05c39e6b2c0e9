r"""The one network definition shared by every dynlearn module.

$$f = T_L \circ g \circ T_{L-1} \circ \dots \circ g \circ T_1, \qquad
T_l(x) = W_l x + b_l,$$

with a componentwise activation $g$. Two parameterisations (Jacot et al. 2018,
arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720):

* `"standard"`: the forward pass is $W x + b$ with $W_{ij} \sim N(0, σ_w^2/n_{in})$
  and $b_i \sim N(0, σ_b^2)$.
* `"ntk"`: the stored weights are standard normal, $W_{ij}, b_i \sim N(0, 1)$, and the
  forward pass is $(σ_w/\sqrt{n_{in}}) W x + σ_b b$.

At initialisation both define the same distribution over functions; they differ in how
gradient descent moves them (in the NTK parameterisation the tangent kernel has a
finite limit as the width grows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from ._misc import (
    check_integer,
    check_key,
    check_nonnegative,
    check_positive,
    draw_in_float64,
)


def _linear(x: Array) -> Array:
    return x


def _erf(x: Array) -> Array:
    return jax.scipy.special.erf(x)


def _gelu(x: Array) -> Array:
    return jax.nn.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "erf": _erf,
    "gelu": _gelu,
    "linear": _linear,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "sin": jnp.sin,
}
"""Activations that can be named by string in [`dynlearn.MLP`][]."""


def get_activation(activation: str | Callable[[Array], Array]) -> Callable:
    """Resolve an activation given by name (see `ACTIVATIONS`) or as a callable."""
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown activation {activation!r}. Use one of {sorted(ACTIVATIONS)} "
            "or pass any callable acting componentwise, e.g. jax.nn.silu."
        ) from None


class Affine(eqx.Module):
    """One affine map $T(x) = s_w W x + s_b b$ of [`dynlearn.MLP`][].

    `weight_scale` $s_w$ and `bias_scale` $s_b$ are 1 in the standard
    parameterisation and $σ_w/\\sqrt{n_{in}}$, $σ_b$ in the NTK parameterisation.
    """

    weight: Array
    bias: Array | None
    weight_scale: float = eqx.field(static=True)
    bias_scale: float = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        y = self.weight_scale * (self.weight @ x)
        if self.bias is not None:
            y = y + self.bias_scale * self.bias
        return y


class MLP(eqx.Module):
    """A fully connected network $f = T_L ∘ g ∘ … ∘ g ∘ T_1$.

    `depth` counts hidden layers, as in `equinox.nn.MLP`: `depth=0` is one affine map
    `in_size → out_size`; `depth=2` is `in → width → width → out` with two activations.

    **Arguments:**

    - `in_size`, `out_size`: input and output dimension. `"scalar"` means a
      shape-`()` input or output.
    - `width`: hidden width.
    - `depth`: number of hidden layers.
    - `activation`: `"tanh"`, `"relu"`, `"erf"`, `"gelu"`, `"linear"`, `"softplus"`,
      `"sigmoid"`, `"sin"`, or any componentwise callable.
    - `parameterization`: `"standard"` or `"ntk"` (see the module docstring).
    - `sigma_w`, `sigma_b`: weight and bias standard deviations σ_w, σ_b. With the
      default σ_b = 0 and `"standard"`, every bias starts at exactly zero (an
      ensemble has no spread in them); pass σ_b > 0 for random biases.
    - `use_bias`: whether the affine maps have biases.
    - `final_activation`: applied to the output (default: identity).
    - `dtype`: parameter dtype (default: JAX's default float). The parameters are
      drawn in float64 and rounded to `dtype`, so a float32 network is the float64
      network of the same key, rounded (with x64 off too, except when the network is
      built inside `jax.jit`, where the draw is made in `dtype`).
    - `key`: a PRNG key, `jax.random.key(seed)` (keyword-only).

    The network acts on one **unbatched** input; use `jax.vmap(net)(xs)` for a batch
    and `eqx.filter_vmap(lambda k: MLP(..., key=k))(keys)` for an ensemble.

    !!! example
        ```python
        net = dynlearn.MLP(3, 1, width=16, depth=1, activation="tanh",
                           key=jax.random.key(0))
        ys = jax.vmap(net)(xs)          # xs: (batch, 3) -> ys: (batch, 1)
        ```
    """

    layers: tuple[Affine, ...]
    activation: Callable[[Array], Array] = eqx.field(static=True)
    final_activation: Callable[[Array], Array] = eqx.field(static=True)
    in_size: int | Literal["scalar"] = eqx.field(static=True)
    out_size: int | Literal["scalar"] = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    parameterization: str = eqx.field(static=True)
    sigma_w: float = eqx.field(static=True)
    sigma_b: float = eqx.field(static=True)

    def __init__(
        self,
        in_size: int | Literal["scalar"],
        out_size: int | Literal["scalar"],
        width: int,
        depth: int,
        activation: str | Callable[[Array], Array] = "tanh",
        *,
        parameterization: Literal["standard", "ntk"] = "standard",
        sigma_w: float = 1.0,
        sigma_b: float = 0.0,
        use_bias: bool = True,
        final_activation: str | Callable[[Array], Array] = "linear",
        dtype=None,
        key: PRNGKeyArray,
    ):
        if parameterization not in ("standard", "ntk"):
            raise ValueError(
                f"parameterization must be 'standard' or 'ntk', got {parameterization!r}."
            )
        width = check_integer("width", width, 1)
        depth = check_integer("depth", depth, 0)
        for name, v in (("in_size", in_size), ("out_size", out_size)):
            if v != "scalar":
                check_integer(f"{name} (or 'scalar')", v, 1)
        check_positive("sigma_w", sigma_w)
        check_nonnegative("sigma_b", sigma_b)
        check_key("key", key)
        dtype = jnp.asarray(1.0).dtype if dtype is None else jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}.")
        n_in = 1 if in_size == "scalar" else in_size
        n_out = 1 if out_size == "scalar" else out_size
        sizes = [n_in] + [width] * depth + [n_out]

        def draw(wide):
            # Drawn (and scaled) in float64 and then rounded to `dtype`, so that a
            # float32 network is the float64 network of the same key in float32.
            keys = jr.split(key, len(sizes) - 1)
            out = []
            for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:]):
                wkey, bkey = jr.split(k)
                w = jr.normal(wkey, (fan_out, fan_in), wide)
                b = jr.normal(bkey, (fan_out,), wide) if use_bias else None
                if parameterization == "standard":
                    w = w * (sigma_w / math.sqrt(fan_in))
                    b = None if b is None else b * sigma_b
                out.append((w, b))
            return out

        layers = []
        for (w, b), fan_in in zip(draw_in_float64(draw, dtype, key), sizes[:-1]):
            if parameterization == "standard":
                ws, bs = 1.0, 1.0
            else:
                ws, bs = sigma_w / math.sqrt(fan_in), sigma_b
            layers.append(Affine(w, b, ws, bs))
        self.layers = tuple(layers)
        self.activation = get_activation(activation)
        self.final_activation = get_activation(final_activation)
        self.in_size, self.out_size = in_size, out_size
        self.width, self.depth = width, depth
        self.parameterization = parameterization
        self.sigma_w, self.sigma_b = float(sigma_w), float(sigma_b)

    @jax.named_scope("dynlearn.MLP")
    def __call__(self, x: Array) -> Array:
        """Evaluate the network on one unbatched input `x` of shape `(in_size,)`."""
        if self.in_size == "scalar":
            if jnp.shape(x) != ():
                raise ValueError(f"MLP expects a scalar input, got shape {x.shape}.")
            x = jnp.reshape(x, (1,))
        elif jnp.shape(x) != (self.in_size,):
            raise ValueError(
                f"MLP expects one input of shape ({self.in_size},), got shape "
                f"{jnp.shape(x)}. For a batch use jax.vmap(net)(xs)."
            )
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.final_activation(self.layers[-1](x))
        if self.out_size == "scalar":
            x = x[0]
        return x
