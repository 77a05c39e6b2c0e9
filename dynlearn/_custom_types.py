"""Type aliases shared across dynlearn (diffrax style: plain unions for static checkers)."""

from collections.abc import Callable
from typing import Any, TypeAlias

from jaxtyping import Array, ArrayLike, Float, PyTree


Params: TypeAlias = PyTree[Any]
"""Any pytree of parameters: a dict of arrays, a tuple, an `eqx.Module`, ..."""

Scalar: TypeAlias = Float[Array, ""]
RealScalarLike: TypeAlias = float | int | ArrayLike
LossFn: TypeAlias = Callable[[Params], Scalar]
"""A loss Φ: maps a parameter pytree to a real scalar."""
