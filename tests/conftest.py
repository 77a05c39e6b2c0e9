"""Shared test configuration: float64 everywhere, because most tests compare against
closed forms to near round-off."""

import jax


jax.config.update("jax_enable_x64", True)
