"""manual-bp: hand-written, vectorised backpropagation in NumPy.

The gradients are checked against ``jax.grad`` of the same forward function
(see ``reference/``); this package itself never imports jax.
"""

from manual_bp.activations import ACTIVATIONS, Activation
from manual_bp.losses import LOSSES, Loss
from manual_bp.model import DNN
from manual_bp.network import backward, batch_loss, forward, init_params

__all__ = [
    "ACTIVATIONS",
    "DNN",
    "LOSSES",
    "Activation",
    "Loss",
    "backward",
    "batch_loss",
    "forward",
    "init_params",
]
__version__ = "0.1.0"
