"""RBM training on the engine: the pseudo-likelihood, the exact-gradient rule, and
bit-exact checkpoints of CD, PCD, exact-gradient, DBN and thermometer runs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dynlearn as dl
from dynlearn import rg


def _random_rbm(seed, nv, nh, units="spin", scale=0.7):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return rg.RBM(
        scale * jax.random.normal(k1, (nv, nh)),
        0.4 * jax.random.normal(k2, (nv,)),
        0.4 * jax.random.normal(k3, (nh,)),
        units,
    )


def _brute_log_p(rbm):
    """ln p(v) of every visible state, from the joint energies E(v, h)."""
    vs = rg.all_spin_states(rbm.n_visible, rbm.units)
    hs = rg.all_spin_states(rbm.n_hidden, rbm.units)
    E = np.asarray(jax.vmap(lambda v: jax.vmap(lambda h: rbm.energy(v, h))(hs))(vs))
    log_w = np.logaddexp.reduce(-E, axis=1)
    return np.asarray(vs), log_w - np.logaddexp.reduce(log_w)


@pytest.mark.parametrize("units", ["spin", "bernoulli"])
def test_pseudo_nll_matches_enumeration(units):
    # −Σ_i ln p(v_i | v_{−i}) with p(v_i | v_{−i}) = p(v) / (p(v) + p(v⁽ⁱ⁾)), from the
    # enumerated joint distribution, for every state of a 6 × 3 RBM
    rbm = _random_rbm(0, 6, 3, units)
    vs, log_p = _brute_log_p(rbm)
    index = {tuple(v): n for n, v in enumerate(vs)}
    other = 1.0 - vs if units == "bernoulli" else -vs
    want = np.zeros(len(vs))
    for n, v in enumerate(vs):
        for i in range(len(v)):
            w = v.copy()
            w[i] = other[n, i]
            m = index[tuple(w)]
            want[n] -= log_p[n] - np.logaddexp(log_p[n], log_p[m])
    per_state = jax.vmap(lambda v: rg.pseudo_nll(rbm, v))(jnp.asarray(vs))
    np.testing.assert_allclose(per_state, want, rtol=1e-13)
    rows = np.array([0, 5, 17, 33, 63, 40, 5])
    np.testing.assert_allclose(
        rg.pseudo_nll(rbm, vs[rows]), np.mean(want[rows]), rtol=1e-13
    )
    # the zero RBM: every conditional is 1/2, so PNLL = NLL = n_v ln 2
    zero = jax.tree.map(jnp.zeros_like, rbm)
    np.testing.assert_allclose(rg.pseudo_nll(zero, vs), 6 * np.log(2), rtol=1e-14)
    # with a key: an unbiased one-site estimate (n_v · one site, averaged)
    ests = jax.vmap(lambda k: rg.pseudo_nll(rbm, vs, key=k))(
        jax.random.split(jax.random.key(1), 400)
    )
    sd = float(np.std(ests)) / np.sqrt(len(ests))
    assert abs(float(np.mean(ests)) - np.mean(want)) < 4 * sd, (np.mean(ests), sd)


def test_pseudo_nll_chunks_large_data_and_differentiates():
    # more configurations × sites × hidden units than one chunk: the same value and
    # gradient as the unchunked vmap
    rbm = _random_rbm(2, 64, 32, scale=0.2)
    data = jnp.where(
        jax.random.bernoulli(jax.random.key(3), 0.5, (2100, 64)), 1.0, -1.0
    )
    direct = lambda r: jnp.mean(
        jax.vmap(
            lambda v: jax.vmap(lambda i: jax.nn.softplus(_gap(r, v, i)))(
                jnp.arange(64)
            ).sum()
        )(data)
    )
    v1, g1 = jax.value_and_grad(rg.pseudo_nll)(rbm, data)
    v2, g2 = jax.value_and_grad(direct)(rbm)
    np.testing.assert_allclose(v1, v2, rtol=1e-13)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def _gap(r, v, i):
    """H(v) − H(v with spin i flipped), from the free energy."""
    return r.visible_hamiltonian(v) - r.visible_hamiltonian(v.at[i].multiply(-1.0))


def test_exact_gradient_update_is_the_gradient_of_exact_nll():
    rbm = _random_rbm(4, 5, 3, "bernoulli")
    batch = rg.all_spin_states(5, "bernoulli")[jnp.array([1, 7, 7, 30])]
    rule = rg.ExactGradient(optax.sgd(0.3), l2=0.1)
    state = rule.init(eqx.filter(rbm, eqx.is_inexact_array))
    new, _, value, gnorm = rule.update(rbm, state, batch, None, key=None)
    g = jax.grad(rg.exact_nll)(rbm, batch)
    gw = g.weight + 0.1 * rbm.weight
    np.testing.assert_allclose(value, rg.exact_nll(rbm, batch), rtol=1e-14)
    np.testing.assert_allclose(new.weight, rbm.weight - 0.3 * gw, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        new.visible_bias, rbm.visible_bias - 0.3 * g.visible_bias, rtol=0, atol=1e-14
    )
    np.testing.assert_allclose(
        new.hidden_bias, rbm.hidden_bias - 0.3 * g.hidden_bias, rtol=0, atol=1e-14
    )
    norm = np.sqrt(np.sum(gw**2) + np.sum(g.visible_bias**2) + np.sum(g.hidden_bias**2))
    np.testing.assert_allclose(gnorm, norm, rtol=1e-13)
    assert new.units == "bernoulli"


def test_exact_gradient_training_lowers_the_exact_kl():
    # target: a random 5 × 3 teacher; exact samples; the student's KL(P‖p_λ) falls
    teacher = _random_rbm(5, 5, 3, scale=1.0)
    vs, log_p = _brute_log_p(teacher)
    idx = np.random.default_rng(0).choice(len(vs), size=2000, p=np.exp(log_p))
    student = rg.RBM.random(jax.random.key(6), 5, 3, 0.1)
    traj = rg.train_rbm(
        student,
        jnp.asarray(vs[idx]),
        key=jax.random.key(7),
        num_steps=400,
        batch_size=50,
        rule=rg.ExactGradient(optax.adam(0.05)),
        observables={"kl": lambda r: rg.exact_kl(r, jnp.asarray(log_p))},
        save_every=100,
    )
    kl = np.asarray(traj.observables["kl"])
    assert kl[0] > 0.3 and kl[-1] < 0.1 * kl[0], kl
    # the recorded loss is the exact NLL of the data, and it decreases
    np.testing.assert_allclose(
        traj.loss[-1], rg.exact_nll(traj.final_params, jnp.asarray(vs[idx])), rtol=1e-13
    )
    assert traj.loss[-1] < traj.loss[0]
    assert traj.stats["method"] == "train_rbm[exact]"
    np.testing.assert_array_equal(traj.ts, [0, 100, 200, 300, 400])


def _host(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(_host(x), _host(y)) for x, y in zip(la, lb)
    )


def _spins(seed, n, nv):
    return jnp.where(
        jax.random.bernoulli(jax.random.key(seed), 0.6, (n, nv)), 1.0, -1.0
    )


def test_pcd_resume_is_bit_exact(tmp_path):
    data = _spins(0, 200, 6)
    rbm = rg.RBM.random(jax.random.key(1), 6, 4, 0.3)
    rule = rg.PersistentContrastiveDivergence.from_data(
        jax.random.key(2), data, 16, optimizer=optax.adam(0.02), k=2, l1=1e-3
    )
    run = dict(key=jax.random.key(3), batch_size=10, rule=rule, save_every=10)
    straight = rg.train_rbm(rbm, data, num_steps=60, **run)
    first = rg.train_rbm(rbm, data, num_steps=20, **run)
    path = first.save(tmp_path / "pcd.npz")
    loaded = dl.Trajectory.load(path, like=rbm)
    resumed = rg.train_rbm(rbm, data, num_steps=60, resume=loaded, **run)
    assert _leaves_equal(resumed.final_params, straight.final_params)
    assert _leaves_equal(resumed.state, straight.state)  # chains and optimiser state
    chains = resumed.state.stepper_state[1]
    assert chains.shape == (16, 6) and set(np.unique(chains)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(resumed.loss, straight.loss[2:])
    np.testing.assert_array_equal(resumed.ts, straight.ts[2:])
    # in memory too; and a restart from the 20-step parameters is another run
    again = rg.train_rbm(rbm, data, num_steps=60, resume=first, **run)
    assert _leaves_equal(again.final_params, straight.final_params)
    restart = rg.train_rbm(first.final_params, data, num_steps=40, **run)
    assert not _leaves_equal(restart.final_params, straight.final_params)


@pytest.mark.parametrize("rule", ["cd", "exact"])
def test_cd_and_exact_resume_are_bit_exact(tmp_path, rule):
    data = _spins(4, 100, 5)
    rbm = rg.RBM.random(jax.random.key(5), 5, 3, 0.3)
    rule = (
        rg.ContrastiveDivergence(optax.sgd(0.05, momentum=0.9), l2=1e-2)
        if rule == "cd"
        else rg.ExactGradient(optax.adam(0.02))
    )
    run = dict(key=jax.random.key(6), batch_size=8, rule=rule)
    straight = rg.train_rbm(rbm, data, num_steps=30, **run)
    path = rg.train_rbm(rbm, data, num_steps=12, **run).save(tmp_path / "ckpt.npz")
    resumed = rg.train_rbm(
        rbm, data, num_steps=30, resume=dl.Trajectory.load(path, like=rbm), **run
    )
    assert _leaves_equal(resumed.final_params, straight.final_params)
    assert _leaves_equal(resumed.state, straight.state)
    np.testing.assert_array_equal(resumed.loss[-1], straight.loss[-1])


def test_dbn_resume_and_pcd_chains_per_layer(tmp_path):
    data = _spins(7, 120, 9)
    rule = rg.PersistentContrastiveDivergence(
        jnp.ones((12, 9)), optimizer=optax.sgd(0.1)
    )
    run = dict(key=jax.random.key(8), batch_size=10, rule=rule)
    straight = rg.train_dbn(data, [4, 2], num_steps=[30, 20], **run)
    assert [t.final_params.weight.shape for t in straight] == [(9, 4), (4, 2)]
    # each layer's chains live on its own input (9, then 4 units)
    assert [t.state.stepper_state[1].shape for t in straight] == [(12, 9), (12, 4)]
    part = rg.train_dbn(data, [4], num_steps=[10], **run)
    path = part[0].save(tmp_path / "layer0.npz")
    like = rg.RBM.random(jax.random.key(0), 9, 4)
    loaded = [dl.Trajectory.load(path, like=like)]
    resumed = rg.train_dbn(data, [4, 2], num_steps=[30, 20], resume=loaded, **run)
    for a, b in zip(resumed, straight):
        assert _leaves_equal(a.final_params, b.final_params)
    # a finished layer is kept as it is
    kept = rg.train_dbn(data, [4, 2], num_steps=[30, 20], resume=straight[:1], **run)
    assert kept[0] is straight[0]
    assert _leaves_equal(kept[1].final_params, straight[1].final_params)


def test_thermometer_resume_is_bit_exact(tmp_path):
    s = _spins(9, 64, 16)
    t = np.repeat([1.0, 4.0], 32)
    run = dict(key=jax.random.key(10), width=8, batch_size=16)
    straight = rg.train_thermometer(s, t, num_steps=30, **run)
    th = straight.final_params
    assert isinstance(th, rg.ClassifierThermometer)
    np.testing.assert_array_equal(th.temperatures, [1.0, 4.0])
    first = rg.train_thermometer(s, t, num_steps=10, **run)
    path = first.save(tmp_path / "thermo.npz")
    loaded = dl.Trajectory.load(path, like=first.final_params)
    resumed = rg.train_thermometer(s, t, num_steps=30, resume=loaded, **run)
    assert _leaves_equal(resumed.final_params, th)
    assert straight.loss[-1] < straight.loss[0]
