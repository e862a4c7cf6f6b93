"""The oracle side: jax.grad of manual_bp's own forward, and the comparison."""
