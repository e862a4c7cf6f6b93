"""jax, configured: float64 enabled (``jax_enable_x64``).

The optimizer oracle imports jax from here.  (Issue 10 makes this the one
module that configures jax; until then ``reference.oracle`` and
``reference.padding`` set the same flag themselves.)
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

__all__ = ["jax", "jnp"]
