"""The code of the engine page (docs/engine.md) runs as written, and says what it
claims: the Langevin stepper's stationary variance, the shape of a vmapped sweep, a
resumed run equal to the straight one, the first bad step of a diverging run."""

import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest


DOC = Path(__file__).resolve().parents[1] / "docs" / "engine.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.slow
def test_engine_page_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for code in _blocks():
        exec(compile(code, str(DOC), "exec"), ns)
    # Langevin on Φ = λθ²/2: the Euler–Maruyama chain θ' = (1 − ηλ)θ + √(2ηT) ξ has
    # the stationary variance (T/λ)/(1 − ηλ/2) exactly; 256 paths after 2000 steps
    # (t = 20, 40 relaxation times) estimate it to a relative error √(2/255)
    lam, T, lr = ns["lam"], ns["T"], 0.01
    exact = T / lam / (1 - lr * lam / 2)
    var = float(jnp.var(ns["traj"].final_params))
    assert abs(var - exact) < 4 * exact * np.sqrt(2 / 255)
    assert ns["sweep"].loss.shape == (32, 101)
    # small learning rates converge and the largest diverge (2/λ_max is crossed)
    stable = np.asarray(ns["stable"])
    assert stable[0] and not stable[-1]
    assert np.all(np.diff(stable.astype(int)) <= 0)  # one stability edge
    assert np.isfinite(float(ns["dloss_dlr"]))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            np.asarray(ns["more"].loss[-1:]), np.asarray(ns["straight"].loss[-1:])
        )
    )
    import jax

    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(ns["more"].final_params),
            jax.tree.leaves(ns["straight"].final_params),
        )
    )
    # the diverging run: lr = 10·2/λ multiplies w by 1 − 20 = −19 per step, so |w|
    # passes the threshold 1e8 at step ⌈8/log10(19)⌉ = 7, at t = 7·lr = 35; the saves
    # of steps 0..6 are kept
    printed = capsys.readouterr().out.split()
    assert printed[-3:] == ["7", "35.0", "7"]
