"""Shared test configuration.

- float64 everywhere, because most tests compare against closed forms to near
  round-off;
- JAX's persistent compilation cache, so that a second run of the suite skips XLA
  compilations it has already done. The folder is `$DYNLEARN_TEST_CACHE`, or
  `~/.cache/dynlearn/jax-tests`, with one subfolder per xdist worker (concurrent
  writers of one cache entry are not safe); set `DYNLEARN_TEST_CACHE=off` to
  compile everything afresh.
"""

import os
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

_cache = os.environ.get(
    "DYNLEARN_TEST_CACHE", str(Path.home() / ".cache" / "dynlearn" / "jax-tests")
)
if _cache.lower() != "off":
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    jax.config.update("jax_compilation_cache_dir", str(Path(_cache) / _worker))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
