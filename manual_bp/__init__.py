"""manual-bp: hand-written, vectorised backpropagation in NumPy.

The gradients are checked against ``jax.grad`` of the same forward function
(see ``reference/``); this package itself never imports jax.
"""

from importlib import metadata as _metadata

from manual_bp.activations import ACTIVATIONS, Activation
from manual_bp.layers import Dense
from manual_bp.losses import LOSSES, Loss
from manual_bp.model import DNN
from manual_bp.net import Net
from manual_bp.network import backward, batch_loss, forward, init_params

__all__ = [
    "ACTIVATIONS",
    "DNN",
    "LOSSES",
    "Activation",
    "Dense",
    "Loss",
    "Net",
    "backward",
    "batch_loss",
    "forward",
    "init_params",
]
try:  # the version is written once, in pyproject.toml
    __version__ = _metadata.version("manual-bp")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
