"""Block spins, observables of coarse configurations, the second-moment correlation
length, receptive fields and stacked RBMs (dynlearn.rg._coarse)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynlearn import rg


def _random_spins(seed, shape):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0)


def test_majority_rule_on_hand_made_configurations():
    key = jax.random.key(0)
    up = jnp.ones((3, 8, 8))
    np.testing.assert_array_equal(rg.majority_rule(up, key=key), jnp.ones((3, 4, 4)))
    np.testing.assert_array_equal(rg.majority_rule(-up, key=key), -jnp.ones((3, 4, 4)))
    s = np.ones((4, 4))
    s[0, 1] = -1  # block (0, 0): 3 up, 1 down -> up
    s[2:, 2:] = -1
    s[3, 3] = 1  # block (1, 1): 1 up, 3 down -> down
    s[2, 0] = -1  # block (1, 0): 3 up, 1 down -> up
    np.testing.assert_array_equal(rg.majority_rule(s, key=key), [[1, 1], [1, -1]])
    # b = 3: a 5–4 majority decides; the dtype is kept
    t = np.ones((3, 6), np.int8)
    t[0, :2] = t[1, :2] = -1  # block 0: 5 up, 4 down
    t[:, 3:] = -1
    t[0, 3] = t[1, 4] = t[2, 5] = t[0, 4] = 1  # block 1: 4 up, 5 down
    out = rg.majority_rule(t, b=3, key=key)
    assert out.dtype == jnp.int8
    np.testing.assert_array_equal(out, [[1, -1]])


def test_majority_rule_breaks_ties_with_a_fair_coin():
    # A checkerboard has block sum 0 in every 2×2 block: every coarse spin is a tie.
    x = np.indices((64, 64)).sum(0) % 2
    checker = 2.0 * x - 1.0
    out = np.asarray(rg.majority_rule(checker, key=jax.random.key(3)))
    assert set(np.unique(out)) == {-1.0, 1.0}
    assert abs(out.mean()) < 4 / np.sqrt(out.size)  # 1024 independent fair coins
    one_tie = checker[:2, :2]
    draws = [
        float(rg.majority_rule(one_tie, key=jax.random.key(i))[0, 0]) for i in range(8)
    ]
    assert set(draws) == {-1.0, 1.0}


def test_decimate_keeps_the_block_corner():
    s = _random_spins(1, (2, 6, 12))
    for b in (2, 3):
        out = np.asarray(rg.decimate(s, b))
        assert out.shape == (2, 6 // b, 12 // b)
        for p, q in itertools.product(range(6 // b), range(12 // b)):
            np.testing.assert_array_equal(out[:, p, q], s[:, p * b, q * b])


@pytest.mark.parametrize(
    "configs, b, match",
    [
        (np.ones((6, 6)), 4, "not divisible"),
        (np.ones((6, 6)), 1, "b must be an integer >= 2"),
        (np.zeros((4, 4)), 2, "±1"),
        (np.ones(4), 2, r"\(\.\.\., L, L\)"),
    ],
)
def test_block_maps_reject_bad_input(configs, b, match):
    with pytest.raises(ValueError, match=match):
        rg.majority_rule(configs, b, key=jax.random.key(0))
    with pytest.raises(ValueError, match=match):
        rg.decimate(configs, b)


def test_observables_of_block_spins_of_aligned_and_striped_states():
    key = jax.random.key(0)
    for sign in (1.0, -1.0):
        obs = rg.lattice_observables(
            rg.majority_rule(sign * jnp.ones((2, 8, 8)), key=key)
        )
        np.testing.assert_array_equal(obs.magnetization, [sign, sign])
        np.testing.assert_array_equal(obs.energy, [-2.0, -2.0])
        np.testing.assert_array_equal(obs.nn_correlation, [1.0, 1.0])
    # Stripes two columns wide become alternating coarse columns: m = 0, the
    # horizontal bonds are all broken and the vertical ones all satisfied, e = 0.
    stripes = np.where((np.arange(8) // 2) % 2 == 0, 1.0, -1.0)[None, :] * np.ones(
        (8, 1)
    )
    coarse = rg.majority_rule(stripes, key=key)
    np.testing.assert_array_equal(coarse, np.tile([1.0, -1.0], (4, 2)))
    obs = rg.lattice_observables(coarse)
    assert float(obs.magnetization) == 0.0 and float(obs.energy) == 0.0
    assert float(obs.nn_correlation) == 0.0


def test_nn_correlation_against_explicit_bond_sums():
    s = _random_spins(2, (3, 5, 7))
    want = []
    for c in s:
        bonds = [
            c[i, j] * c[i, (j + 1) % 7] + c[i, j] * c[(i + 1) % 5, j]
            for i in range(5)
            for j in range(7)
        ]
        want.append(np.sum(bonds) / (2 * 35))
    obs = rg.lattice_observables(s)
    np.testing.assert_allclose(obs.nn_correlation, want, rtol=1e-14)
    np.testing.assert_allclose(obs.energy, -2 * np.array(want), rtol=1e-14)
    np.testing.assert_allclose(obs.magnetization, s.mean(axis=(1, 2)), rtol=1e-14)


def test_structure_factors_and_xi2_against_numpy_fft():
    s = _random_spins(3, (40, 6, 6))
    s[:20] = np.sign(s[:20] + 0.8 * s[:20, :, :1])  # give some configurations structure
    s0, f = rg.structure_factors(s)
    ft = np.fft.fft2(s)
    np.testing.assert_allclose(s0, np.abs(ft[:, 0, 0]) ** 2 / 36, rtol=1e-12)
    f_np = (np.abs(ft[:, 1, 0]) ** 2 + np.abs(ft[:, 0, 1]) ** 2) / 72
    np.testing.assert_allclose(f, f_np, rtol=1e-12, atol=1e-12)
    chi, F = np.mean(np.abs(ft[:, 0, 0]) ** 2 / 36), f_np.mean()
    xi = np.sqrt(chi / F - 1) / (2 * np.sin(np.pi / 6))
    np.testing.assert_allclose(rg.second_moment_correlation_length(s), xi, rtol=1e-12)
    est = rg.correlation_length_estimate(s, num_groups=4)
    np.testing.assert_allclose(est.mean, xi, rtol=1e-12)
    # jackknife over groups of the 4-axis form agrees with the flat form
    est4 = rg.correlation_length_estimate(s.reshape(4, 10, 6, 6))
    np.testing.assert_allclose(est4, est, rtol=1e-12)
    # χ < F (anticorrelated halves): no second-moment correlation length -> NaN
    halves = np.where(np.arange(4) < 2, 1.0, -1.0) * np.ones((3, 4, 1))
    assert np.isnan(rg.second_moment_correlation_length(halves))
    with pytest.raises(ValueError, match="divide"):
        rg.correlation_length_estimate(s, num_groups=7)


def test_xi2_of_exact_samples_matches_exact_enumeration():
    # 4×4 torus at K = 0.3: exact ⟨S(0)⟩ and ⟨S(k_min)⟩ over all 65536 states (numpy
    # FFT), against 1600 independent exact samples in 16 jackknife groups.
    K, L = 0.3, 4
    states = np.array(list(itertools.product((-1, 1), repeat=L * L)), float)
    states = states.reshape(-1, L, L)
    bonds = (states * np.roll(states, 1, 1) + states * np.roll(states, 1, 2)).sum(
        (1, 2)
    )
    p = np.exp(K * bonds - np.log(np.exp(K * bonds).sum()))
    ft = np.fft.fft2(states)
    chi = p @ (np.abs(ft[:, 0, 0]) ** 2) / 16
    F = p @ (np.abs(ft[:, 1, 0]) ** 2 + np.abs(ft[:, 0, 1]) ** 2) / 32
    xi_exact = np.sqrt(chi / F - 1) / (2 * np.sin(np.pi / L))
    idx = np.random.default_rng(6).choice(len(p), size=1600, p=p)
    est = rg.correlation_length_estimate(states[idx], num_groups=16)
    assert 0 < est.stderr < 0.05 * xi_exact
    assert abs(est.mean - xi_exact) < 4 * est.stderr, (est, xi_exact)


def _gauss_image(L, centre, sigma):
    d = [np.arange(L) - c for c in centre]
    d = [np.mod(x + L / 2, L) - L / 2 for x in d]
    return np.exp(-(d[0][:, None] ** 2 + d[1][None, :] ** 2) / (2 * sigma**2))


def test_receptive_radius_of_gaussian_blobs_and_blocks():
    # Lattice sums of a Gaussian equal the continuum moments up to e^{-2π²σ²}:
    # RMS radius √2 σ, centre exact, also across the periodic boundary.
    centres = [(10.0, 12.0), (31.5, 0.25), (0.0, 16.7)]
    imgs = np.stack([_gauss_image(32, c, 2.0) for c in centres])
    imgs[1] *= -3.0  # sign and scale do not matter
    np.testing.assert_allclose(rg.receptive_radius(imgs), 2 * np.sqrt(2), rtol=1e-10)
    # weights r²: a Gaussian of width σ/√2, so R = σ
    np.testing.assert_allclose(rg.receptive_radius(imgs, power=2), 2.0, rtol=1e-10)
    for power in (1, 2):
        got = np.asarray(rg.receptive_centre(imgs, power))
        diff = np.mod(got - np.array(centres) + 16, 32) - 16
        np.testing.assert_allclose(diff, 0, atol=1e-9)
    # The Gaussian fit recovers √2 σ with an offset background (grid + parabola in
    # ln σ: measured 3e-6), where the RMS radius is inflated fourfold by the offset.
    shifted = imgs + 0.1
    np.testing.assert_allclose(rg.fitted_radius(shifted), 2 * np.sqrt(2), rtol=1e-4)
    assert np.all(rg.receptive_radius(shifted) > 3 * 2 * np.sqrt(2))
    # Uniform s×s block: R = √((s² − 1)/6), here wrapping around both edges.
    for s in (2, 3, 4):
        img = np.zeros((16, 16))
        rows = np.arange(-1, s - 1) % 16
        img[np.ix_(rows, (rows + 5) % 16)] = 0.7
        for power in (1, 3):
            np.testing.assert_allclose(
                rg.receptive_radius(img, power), np.sqrt((s * s - 1) / 6), rtol=1e-12
            )


def _block_rbm(L, b, beta=1.0):
    # W[i, j] = β when fine site i lies in b×b block j (row-major both).
    n = L // b
    r, c = np.divmod(np.arange(L * L), L)
    block = (r // b) * n + c // b
    W = beta * (block[:, None] == np.arange(n * n)[None, :])
    return rg.RBM(jnp.asarray(W, float), jnp.zeros(L * L), jnp.zeros(n * n))


def test_receptive_fields_and_layout_of_a_block_spin_stack():
    stack = [_block_rbm(16, 2), _block_rbm(8, 2), _block_rbm(4, 2)]
    for depth in (1, 2, 3):
        fields = rg.receptive_fields(stack[:depth], 16)
        s = 2**depth
        assert fields.shape == ((16 // s) ** 2, 16, 16)
        np.testing.assert_array_equal(np.unique(fields), [0.0, 1.0])
        np.testing.assert_allclose(
            rg.receptive_radius(fields), np.sqrt((s * s - 1) / 6)
        )
    # Scramble the middle layer's units and flip some: the layout undoes it.
    rng = np.random.default_rng(0)
    perm, flip = rng.permutation(16), np.where(rng.random(16) < 0.5, -1.0, 1.0)
    W1 = stack[0].weight @ stack[1].weight
    scrambled = [
        stack[0],
        rg.RBM(stack[1].weight[:, perm] * flip, jnp.zeros(64), jnp.zeros(16)),
    ]
    layout = rg.HiddenLayout.from_fields(rg.receptive_fields(scrambled, 16))
    np.testing.assert_array_equal(layout.signs, flip)
    h = jnp.asarray(_random_spins(4, (5, 16)))  # units in block order
    np.testing.assert_array_equal(layout(h[:, perm] * flip), h.reshape(5, 4, 4))
    assert W1.shape == (256, 16)


def test_sharp_block_rbm_coarse_grains_like_majority_rule():
    # p(h_B = +1|v) = σ(2β Σ_B v) -> majority rule as β -> ∞ (b = 3: no ties).
    v = _random_spins(5, (50, 6, 6))
    stack = [_block_rbm(6, 3, beta=50.0)]
    (h,) = rg.coarse_grain(stack, v.reshape(50, 36), key=jax.random.key(0))
    np.testing.assert_array_equal(
        h.reshape(50, 2, 2), rg.majority_rule(v, 3, key=jax.random.key(1))
    )


def test_train_dbn_shapes_and_layer_one_likelihood():
    # Data: 3000 exact samples of the 3×3 torus at K = 0.5 (enumeration).
    states = np.array(list(itertools.product((-1, 1), repeat=9)), float)
    grid = states.reshape(-1, 3, 3)
    bonds = (grid * np.roll(grid, 1, 1) + grid * np.roll(grid, 1, 2)).sum((1, 2))
    p = np.exp(0.5 * bonds) / np.exp(0.5 * bonds).sum()
    idx = np.random.default_rng(0).choice(512, size=3000, p=p)
    data = jnp.asarray(states[idx])
    trajs = rg.train_dbn(
        data,
        [4, 2],
        key=jax.random.key(1),
        num_steps=[300, 20],
        batch_size=50,
        rule=rg.ContrastiveDivergence(optax.sgd(0.1)),
    )
    rbms = [t.final_params for t in trajs]
    assert [len(t) for t in trajs] == [2, 2]
    assert [r.weight.shape for r in rbms] == [(9, 4), (4, 2)]
    counts = np.bincount(idx, minlength=512)
    q = counts[counts > 0] / 3000
    entropy = -np.sum(q * np.log(q))  # 1.92: the lowest NLL any model can reach
    uniform = 9 * np.log(2)  # 6.24: the initial (W ≈ 0) and best product model
    nll = float(rg.exact_nll(rbms[0], data))  # 2.16 when calibrated
    assert nll < uniform - 0.9 * (uniform - entropy), (nll, uniform, entropy)
    h1, h2 = rg.coarse_grain(rbms, data.reshape(3, 1000, 9), key=jax.random.key(2))
    assert h1.shape == (3, 1000, 4) and h2.shape == (3, 1000, 2)
    assert set(np.unique(h2)) <= {-1.0, 1.0}
    with pytest.raises(ValueError, match="one per layer"):
        rg.train_dbn(data, [4, 2], key=jax.random.key(0), num_steps=[10], batch_size=5)
    with pytest.raises(ValueError, match="±1"):
        rg.train_dbn(
            (data + 1) / 2, [4], key=jax.random.key(0), num_steps=10, batch_size=5
        )
    with pytest.raises(ValueError, match="read the hidden layer"):
        rg.coarse_grain(rbms[::-1], data, key=jax.random.key(0))


def _locality_brute_force(img, mass):
    """Grow the disc around the circular-mean centre one distinct distance at a time
    (distances within 1e-9 are equal, as in the library)."""
    c = np.asarray(rg.receptive_centre(img))
    rows, cols = img.shape
    dr = (np.arange(rows) - c[0] + rows / 2) % rows - rows / 2
    dc = (np.arange(cols) - c[1] + cols / 2) % cols - cols / 2
    d2 = dr[:, None] ** 2 + dc[None, :] ** 2
    w = np.abs(img)
    for rho2 in np.unique(d2):
        disc = d2 <= rho2 + 1e-9
        if w[disc].sum() >= mass * w.sum() * (1 - 1e-12):
            return disc.mean()
    raise AssertionError


def test_locality_index_against_brute_force_and_limits():
    L = 12
    # a single site: 1/N; a uniform field: the smallest disc holding 90% of the sites
    # (its centre is arbitrary: the circular mean of a uniform weight vanishes)
    point = np.zeros((L, L))
    point[3, 5] = -2.0
    uniform = np.ones((L, L))
    # a 4×4 block wrapping around the corner: all of its 16 sites, and only those, for
    # mass = 1 (the disc through its farthest sites holds no other site)
    block = np.zeros((L, L))
    block[np.ix_([10, 11, 0, 1], [11, 0, 1, 2])] = 1.0
    idx = np.asarray(rg.locality_index(np.stack([point, uniform, block]), 0.9))
    assert idx[0] == 1 / L**2
    assert 0.9 <= idx[1] < 1.0
    np.testing.assert_allclose(idx[2], _locality_brute_force(block, 0.9), rtol=1e-14)
    full = float(rg.locality_index(block, 1.0))
    assert full == 16 / L**2
    # random blobs on a noisy background, several masses, batched shapes
    rng = np.random.default_rng(0)
    x = np.arange(L)
    imgs = []
    for _ in range(6):
        c, s = rng.uniform(0, L, 2), rng.uniform(0.7, 3.0)
        d = [(x - ci + L / 2) % L - L / 2 for ci in c]
        blob = np.exp(-(d[0][:, None] ** 2 + d[1][None, :] ** 2) / (2 * s**2))
        imgs.append(blob + 0.05 * rng.normal(size=(L, L)))
    imgs = np.stack(imgs).reshape(2, 3, L, L)
    for mass in (0.5, 0.9, 0.99):
        got = np.asarray(rg.locality_index(imgs, mass))
        want = [[_locality_brute_force(i, mass) for i in row] for row in imgs]
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)  # same site count
    with pytest.raises(ValueError, match="mass"):
        rg.locality_index(uniform, 0.0)
