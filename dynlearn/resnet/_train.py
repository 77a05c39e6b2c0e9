"""Classification data made in code, and full-batch training with optax."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from .._data import two_moons
from .._engine import Optax, iterate
from .._observables import AbstractObservable
from .._trajectory import Trajectory
from ._field import ResidualField


def _check_data_args(name: str, n, noise) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(
            f"{name}: `n` (the number of examples) must be a positive integer, got "
            f"{n!r}."
        )
    if not (np.ndim(noise) == 0 and np.isreal(noise) and 0 <= float(noise) < np.inf):
        raise ValueError(
            f"{name}: `noise` (the Gaussian noise level) must be finite and >= 0, "
            f"got {noise!r}."
        )


def moons(
    n: int = 400, noise: float = 0.2, *, key: PRNGKeyArray
) -> tuple[Array, Array]:
    """Two moons (from [`dynlearn.two_moons`][]) with integer labels 0/1."""
    _check_data_args("moons", n, noise)
    return _moons(key, n, noise)


@eqx.filter_jit
def _moons(key, n, noise):
    X, y = two_moons(n, noise, key=key)
    return X, (y > 0).astype(jnp.int32)


def circles(
    n: int = 400, noise: float = 0.1, factor: float = 0.5, *, key: PRNGKeyArray
) -> tuple[Array, Array]:
    """Two concentric circles of radii 1 and `factor`, Gaussian noise `noise`;
    labels 0 (outer) / 1 (inner). Returns `X` `(n, 2)`, `y` `(n,)`."""
    _check_data_args("circles", n, noise)
    if not 0 < factor < 1:
        raise ValueError(f"`factor` must be in (0, 1), got {factor!r}.")
    return _circles(key, n, noise, factor)


@eqx.filter_jit
def _circles(key, n, noise, factor):
    kt, kl, kn = jr.split(key, 3)
    y = (jr.uniform(kl, (n,)) < 0.5).astype(jnp.int32)
    phi = 2 * jnp.pi * jr.uniform(kt, (n,))
    r = jnp.where(y == 1, factor, 1.0)
    X = r[:, None] * jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1)
    return X + noise * jr.normal(kn, (n, 2)), y


def spirals(
    n: int = 400, noise: float = 0.2, turns: float = 1.5, *, key: PRNGKeyArray
) -> tuple[Array, Array]:
    """Two interleaved Archimedean spirals $r = φ/(2π\\,\\text{turns})$, the second
    rotated by π, with Gaussian noise `noise`/3 (radius ≤ 1); labels 0/1."""
    _check_data_args("spirals", n, noise)
    if not (np.ndim(turns) == 0 and 0 < float(turns) < np.inf):
        raise ValueError(
            f"spirals: `turns` (windings of each arm) must be positive and finite, "
            f"got {turns!r}."
        )
    return _spirals(key, n, noise, turns)


@eqx.filter_jit
def _spirals(key, n, noise, turns):
    kt, kl, kn = jr.split(key, 3)
    y = (jr.uniform(kl, (n,)) < 0.5).astype(jnp.int32)
    s = jnp.sqrt(jr.uniform(kt, (n,)))  # uniform density along the arm
    phi = 2 * jnp.pi * turns * s + jnp.pi * y
    X = s[:, None] * jnp.stack([jnp.cos(phi), jnp.sin(phi)], -1)
    return X + (noise / 3) * jr.normal(kn, (n, 2)), y


def digits() -> tuple[Array, Array]:
    """The 8×8 digits set shipped with scikit-learn (1797 × 64, 10 classes), scaled to
    [0, 1]. Optional: needs scikit-learn installed (it is read from the installed
    package, never downloaded)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "dynlearn.resnet.digits() needs scikit-learn, which is not installed "
            "(`pip install 'dynlearn[digits]'` or `pip install scikit-learn`); or use "
            "moons/circles/spirals."
        ) from None
    d = load_digits()
    return jnp.asarray(d.data / 16.0), jnp.asarray(d.target, jnp.int32)


def split(
    X: Array, y: Array, test_fraction: float = 0.3, *, key: PRNGKeyArray
) -> tuple[Array, Array, Array, Array]:
    """Random train/test split: `(X_train, y_train, X_test, y_test)`."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}.")
    n = jnp.shape(X)[0] if jnp.ndim(X) else 0
    if jnp.ndim(y) < 1 or jnp.shape(y)[0] != n:
        raise ValueError(
            f"X and y need the same number of examples (leading axis); got shapes "
            f"{jnp.shape(X)} and {jnp.shape(y)}."
        )
    m = int(round(n * (1 - test_fraction)))
    if not 0 < m < n:
        raise ValueError(
            f"Splitting {n} examples with test_fraction={test_fraction!r} leaves "
            f"{m} for training and {n - m} for testing; both must be non-empty."
        )
    perm = jr.permutation(key, n)
    tr, te = perm[:m], perm[m:]
    return X[tr], y[tr], X[te], y[te]


def accuracy(model, X: Array, y: Array) -> Array:
    """Fraction of inputs whose largest logit is the label."""
    logits = jax.vmap(model)(X)
    return jnp.mean((jnp.argmax(logits, -1) == y).astype(logits.dtype))


def smoothness(model) -> Array:
    """Sum of [`dynlearn.resnet.ResidualField.smoothness_penalty`][] over every
    residual field inside `model`."""
    fields = [
        leaf
        for leaf in jax.tree.leaves(
            model, is_leaf=lambda v: isinstance(v, ResidualField)
        )
        if isinstance(leaf, ResidualField)
    ]
    return sum((f.smoothness_penalty() for f in fields), jnp.zeros(()))


class _TrainAccuracy(AbstractObservable):
    """The training accuracy, recorded along the run (the data are traced fields, so
    new data of the same shapes reuse the compiled program)."""

    X: Array
    y: Array

    def __call__(self, loss_fn, params):
        del loss_fn
        return accuracy(params, self.X, self.y)


def _objective(model, args):
    """Mean softmax cross-entropy + α·smoothness, `args = (X, y, α)`."""
    X, y, alpha = args
    logits = jax.vmap(model)(X)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + alpha * smoothness(model)


# one optimiser object: repeated calls with the default reuse the compiled program
_DEFAULT_OPTIMIZER = optax.adam(1e-2)


def train_classifier(
    model,
    X: Array,
    y: Array,
    *,
    num_steps: int,
    optimizer: optax.GradientTransformation | None = None,
    smoothness_weight: float = 0.0,
    save_every: int = 1,
    resume: Trajectory | None = None,
    progress: bool | None = None,
) -> Trajectory:
    r"""Full-batch training of any classifier module on `(X, y)` with optax,
    minimising the objective

    $$Φ(θ) = \frac1n\sum_i \mathrm{CE}(\mathrm{softmax}(f_θ(x_i)), y_i) + α\,
    \mathrm{smoothness}(θ),$$

    mean softmax cross-entropy plus Chang et al.'s weight-smoothness regulariser
    ($α$ = `smoothness_weight`, see [`dynlearn.resnet.smoothness`][]). It runs on
    [`dynlearn.iterate`][] with [`dynlearn.Optax`][]`(optimizer)` (default
    `optax.adam(1e-2)`); the data and α are passed as `args`, so new data of the same
    shapes, or a new α, reuse the compiled program.

    **Arguments:** `num_steps` (the step count at the end of the run, as in
    [`dynlearn.iterate`][]), `save_every`, `resume` (continue a run bit for bit from
    its trajectory or a loaded checkpoint) and `progress` as in
    [`dynlearn.iterate`][].

    **Returns** a [`dynlearn.Trajectory`][] at `ts` = step index, saved every
    `save_every` steps and at the end: `final_params` is the trained model, `loss`
    the objective Φ above (regulariser included), `observables["train_accuracy"]` the
    fraction of training inputs classified correctly and `observables["grad_norm"]`
    ‖∇Φ‖.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`num_steps` must be a positive integer, got {num_steps!r}.")
    X, y = jnp.asarray(X), jnp.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 1:
        raise ValueError(
            f"Need X of shape (n, d) with n >= 1 and integer labels y of shape (n,); "
            f"got {X.shape} and {y.shape}."
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(
            f"The labels y must be integer class indices 0..C-1, got dtype {y.dtype} "
            "(convert with y.astype(int))."
        )
    if not (np.ndim(smoothness_weight) == 0 and 0 <= float(smoothness_weight) < np.inf):
        raise ValueError(
            f"`smoothness_weight` must be finite and >= 0, got {smoothness_weight!r}."
        )
    if optimizer is not None and not isinstance(
        optimizer, optax.GradientTransformation
    ):
        raise TypeError(
            "`optimizer` must be an optax.GradientTransformation such as "
            f"optax.adam(1e-2), got {type(optimizer).__name__}."
        )
    logits = eqx.filter_eval_shape(model, X[0])
    if getattr(logits, "ndim", None) != 1:
        raise ValueError(
            f"The model must map one input of shape ({X.shape[1]},) to a vector of "
            f"class logits, got output shape {getattr(logits, 'shape', logits)}."
        )
    num_classes = logits.shape[0]
    if not isinstance(y, jax.core.Tracer):
        lo, hi = int(jnp.min(y)), int(jnp.max(y))
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"The labels must lie in 0..{num_classes - 1} (the model has "
                f"{num_classes} logits), got labels in {lo}..{hi}."
            )
    optimizer = _DEFAULT_OPTIMIZER if optimizer is None else optimizer
    alpha = jnp.asarray(float(smoothness_weight), logits.dtype)
    return iterate(
        _objective,
        model,
        Optax(optimizer),
        num_steps,
        args=(X, y, alpha),
        observables={"train_accuracy": _TrainAccuracy(X, y)},
        save_every=save_every,
        resume=resume,
        progress=progress,
        method="train_classifier[optax]",
    )
