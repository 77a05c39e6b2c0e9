"""Shared test configuration.

- float64 everywhere, because most tests compare against closed forms to near
  round-off;
- XLA's cheap compilation mode (`jax_disable_most_optimizations`): the tests run
  small problems, so their time is almost all compilation. Set
  `DYNLEARN_TEST_OPTIMIZE=1` to compile as a user's program is compiled; the suite
  passes in both modes. Child processes (the command-line tests) inherit the mode.
- JAX's persistent compilation cache is off unless `$DYNLEARN_TEST_CACHE` names a
  folder (one subfolder per xdist worker): a cold run, as in CI, gains nothing
  from it, and a warm one skips compilations it has already done.
- every compiled program is dropped after each test module (see
  `_free_compiled_programs`).
"""

import gc
import os
from pathlib import Path

import jax
import pytest


jax.config.update("jax_enable_x64", True)

if os.environ.get("DYNLEARN_TEST_OPTIMIZE", "") not in ("1", "true", "yes"):
    jax.config.update("jax_disable_most_optimizations", True)
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # and in child processes

_cache = os.environ.get("DYNLEARN_TEST_CACHE", "")
if _cache and _cache.lower() != "off":
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    jax.config.update("jax_compilation_cache_dir", str(Path(_cache) / _worker))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop every compiled program after each test module. Each XLA CPU executable
    holds its own memory mappings, and a worker that keeps the few thousand programs
    of the whole suite reaches the kernel's limit on mappings per process
    (`vm.max_map_count`, 65530 by default), where XLA aborts."""
    yield
    jax.clear_caches()
    gc.collect()
