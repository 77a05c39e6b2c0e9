"""The public API follows one grammar: a PRNG key is always passed by keyword, and
a step count is always `num_steps`."""

import inspect

import dynlearn as dl
import dynlearn.echo
import dynlearn.resnet
import dynlearn.rg
import dynlearn.stiff
import dynlearn.width


MODULES = [dl, dl.echo, dl.resnet, dl.rg, dl.stiff, dl.width]
# state containers whose fields include a key (built by the engine, not called)
STATE = {"EngineState"}


def _public_callables():
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                if name in STATE:
                    continue
                yield f"{module.__name__}.{name}", obj.__init__
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and inspect.isfunction(member):
                        yield f"{module.__name__}.{name}.{attr}", member
            elif callable(obj):
                yield f"{module.__name__}.{name}", obj


def test_every_key_is_keyword_only():
    checked, positional = 0, []
    for where, fn in _public_callables():
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # builtins without a signature
            continue
        if "key" in params:
            checked += 1
            if params["key"].kind is not inspect.Parameter.KEYWORD_ONLY:
                positional.append(where)
    assert checked >= 30  # the check saw the samplers, the data sets and the engine
    assert positional == [], f"key is positional in {positional}"


def test_one_spelling_of_a_step_count():
    """A number of steps is `num_steps` everywhere (`max_steps` is a budget)."""
    other = [
        f"{where}({name})"
        for where, fn in _public_callables()
        for name in _parameters(fn)
        if name in ("steps", "n_steps", "nsteps", "num_step")
    ]
    assert other == []


def _parameters(fn) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def test_no_bare_count_names():
    """Counts say what they count: `num_samples`, `num_chains`, not `num` or `n`."""
    bare = [
        f"{where}({name})"
        for where, fn in _public_callables()
        for name in _parameters(fn)
        if name == "num"
    ]
    assert bare == []
