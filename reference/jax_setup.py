"""jax, configured once for the oracle side: every module imports it from here.

Importing this module (and so anything in ``reference/`` that runs jax) has
two process-wide effects, deliberately in one place:

* ``jax_enable_x64``: jax computes in float64 when given float64, as the
  oracle needs.  It applies to every jax computation in the process, the
  caller's own included.
* ``jax_cpu_enable_async_dispatch = False``: the oracle reads every result
  back at once, so handing each call to a dispatch thread only adds work
  (about a third of a small call's CPU time; ``benchmarks/RESULTS.md``).  It
  is read when jax creates its CPU client, so it has no effect if jax has
  already computed something before this import.

>>> from manual_bp_reference.jax_setup import jnp
>>> jnp.zeros(1, dtype="float64").dtype
dtype('float64')
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_enable_async_dispatch", False)

__all__ = ["jax", "jnp"]
