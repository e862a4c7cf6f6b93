"""``DNN``: the seed's object API over the functional core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from manual_bp import network, training
from manual_bp.architecture import cache_keys
from manual_bp.losses import LOSSES
from manual_bp.validation import (
    check_activations,
    check_dtype,
    check_inputs,
    check_layer_sizes,
    check_learning_rate,
    check_loss_pair,
    check_params,
    check_positive_int,
    check_shape,
    check_targets,
)

Array = np.ndarray


def _read_only(params: Mapping[str, Array], copy: bool) -> dict[str, Array]:
    """The net's own arrays are read-only, so no caller can change them by accident."""
    frozen = {}
    for key, value in params.items():
        array = np.array(value, copy=True) if copy else value
        array.flags.writeable = False
        frozen[key] = array
    return frozen


class DNN:
    """A fully connected network trained by hand-written backpropagation.

    Parameters
    ----------
    layer_sizes : [n0, n1, ..., nL], L >= 1
    activations : L names from ``manual_bp.ACTIVATIONS``.  Default: sigmoid for
        the hidden layers and the loss's canonical activation for the output.
    loss : "binary_cross_entropy", "cross_entropy" or "mse".  Default:
        binary_cross_entropy when nL == 1, else cross_entropy.
    seed : seeds the initial weights and the mini-batch shuffling.
    dtype : "float64" (default) or "float32"; params, cache and grads keep it.
        Inputs of another dtype are converted to it.

    Examples
    --------
    >>> import numpy as np
    >>> from manual_bp import DNN
    >>> net = DNN([2, 3, 3, 1], seed=0)
    >>> net.activations, net.loss_name
    (('sigmoid', 'sigmoid', 'sigmoid'), 'binary_cross_entropy')
    >>> X = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, -0.5]])
    >>> Y = np.array([[1.0, 0.0, 1.0]])
    >>> out, cache = net.forward(X)
    >>> grads = net.compute_gradients(out, cache, Y)
    >>> grads["W3"].shape, grads["B1"].shape, grads["Z2"].shape
    ((1, 3), (3, 1), (3, 3))
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activations: Sequence[str] | None = None,
        loss: str | None = None,
        seed: int | None = 0,
        dtype: str | np.dtype = "float64",
    ) -> None:
        sizes = check_layer_sizes(layer_sizes)
        depth = len(sizes) - 1
        resolved_dtype = check_dtype(dtype)
        if loss is None:
            loss = "binary_cross_entropy" if sizes[-1] == 1 else "cross_entropy"
        if activations is None:
            if loss not in LOSSES:
                raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}")
            activations = ["sigmoid"] * (depth - 1) + [LOSSES[loss].canonical_activation]
        names = check_activations(activations, depth)
        check_loss_pair(loss, names[-1], sizes[-1])
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed: expected an int >= 0 or None, got {seed!r}")
        if seed is not None and seed < 0:  # numpy's generators refuse it, less clearly
            raise ValueError(f"seed: expected an int >= 0 or None, got {seed}")

        self.layer_sizes: tuple[int, ...] = tuple(sizes)
        self.activations: tuple[str, ...] = tuple(names)
        self.loss_name: str = loss
        self.dtype: np.dtype = resolved_dtype
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._cache_keys = frozenset(cache_keys(depth))
        self._params = _read_only(
            network.init_params(sizes, names, seed, resolved_dtype), copy=False
        )

    @property
    def depth(self) -> int:
        """L, the number of layers with weights."""
        return len(self.activations)

    @property
    def params(self) -> dict[str, Array]:
        """``W1`` (n1, n0), ``B1`` (n1, 1), ..., ``WL``, ``BL`` (read-only arrays).

        Assigning a dict replaces them all; it is checked for keys, shapes,
        dtype and finiteness, and copied, so the caller's arrays stay theirs.
        """
        return dict(self._params)

    @params.setter
    def params(self, new_params: Mapping[str, Array]) -> None:
        checked = check_params(new_params, self.layer_sizes, self.dtype)
        self._params = _read_only(checked, copy=True)

    def __repr__(self) -> str:
        return (
            f"DNN(layer_sizes={list(self.layer_sizes)}, "
            f"activations={list(self.activations)}, loss={self.loss_name!r}, "
            f"seed={self.seed!r}, dtype={self.dtype.name!r})"
        )

    def _inputs(self, X: object) -> Array:
        return check_inputs(X, self.layer_sizes[0], self.dtype)

    def _targets(self, Y: object, m: int) -> Array:
        return check_targets(Y, (self.layer_sizes[-1], m), self.loss_name, self.dtype)

    def forward(self, X: object) -> tuple[Array, dict[str, Array]]:
        """``out = AL`` of shape (nL, m) and the cache for ``compute_gradients``.

        ``X`` has shape (n0, m), one sample per column.  The cache holds ``A0``
        and ``Wl``, ``Zl``, ``Al`` for every layer (see ``manual_bp.network``).
        """
        # The net's params and the checked X share self.dtype: no dispatch.
        return network.forward_numpy(self._params, self._inputs(X), self.activations)

    def predict(self, X: object) -> Array:
        """``AL`` of shape (nL, m)."""
        return self.forward(X)[0]

    def loss(self, X: object, Y: object) -> float:
        """The batch-mean loss, computed stably from the logits."""
        inputs = self._inputs(X)
        targets = self._targets(Y, inputs.shape[1])
        return float(
            network.batch_loss(self._params, inputs, targets, self.activations, self.loss_name)
        )

    def compute_gradients(
        self,
        out: Array,
        cache: Mapping[str, Array],
        Y: object,
        input_gradient: bool = False,
    ) -> dict[str, Array]:
        """dL/dv for every ``Wl``, ``Bl``, ``Zl`` and ``Al`` (l < L) of the cache.

        ``L`` is the mean loss over the batch, so each ``dWl`` and ``dBl`` is
        the average of the per-sample gradients.  With ``input_gradient=True``
        the result also holds ``A0`` = dL/dX.
        """
        self._check_cache(out, cache)
        targets = self._targets(Y, cache["A0"].shape[1])
        return network.backward(
            cache, targets, self.activations, self.loss_name, input_gradient=bool(input_gradient)
        )

    def _check_cache(self, out: Array, cache: Mapping[str, Array]) -> None:
        if not isinstance(cache, Mapping):
            raise TypeError(
                f"cache: expected the dict returned by forward, got {type(cache).__name__}"
            )
        if not self._cache_keys <= cache.keys():
            missing = sorted(self._cache_keys - set(cache))
            raise ValueError(
                f"cache: expected the dict returned by this network's forward, missing {missing}"
            )
        last = cache[f"A{self.depth}"]
        out = np.asarray(out)
        check_shape(out, "out", last.shape)
        if out is not last and not np.array_equal(out, last):
            raise ValueError("out: expected the output AL stored in cache, got different values")

    def step(self, grads: Mapping[str, Array], learning_rate: float) -> None:
        """One SGD update of every ``Wl`` and ``Bl``: ``Wl <- Wl - lr dWl``.

        The network's parameters are replaced by new arrays; no array is
        written in place, so caches and caller-held arrays stay valid.
        """
        lr = check_learning_rate(learning_rate)
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads: expected a dict of arrays, got {type(grads).__name__}")
        update = {key: grads[key] for key in self._params if key in grads}
        check_params(update, self.layer_sizes, self.dtype, name="grads")
        self._params = _read_only(training.sgd_step(self._params, update, lr), copy=False)

    def fit(
        self,
        X: object,
        Y: object,
        epochs: int,
        learning_rate: float,
        batch_size: int | None = None,
    ) -> list[float]:
        """Mini-batch SGD; returns the mean training loss after each epoch.

        ``batch_size=None`` uses the whole batch each step.  Mini-batches are
        shuffled by the generator seeded with ``seed``.  If an epoch ends with
        a NaN or inf, ``training.TrainingDiverged`` (a ``FloatingPointError``)
        names the epoch and the parameters stay those of the last finite epoch.
        """
        inputs = self._inputs(X)
        targets = self._targets(Y, inputs.shape[1])
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        lr = check_learning_rate(learning_rate)
        if batch_size is not None:
            batch_size = check_positive_int(batch_size, "batch_size")
        try:
            params, history = training.fit(
                self._params,
                inputs,
                targets,
                self.activations,
                self.loss_name,
                epochs,
                lr,
                batch_size,
                self._rng,
            )
        except training.TrainingDiverged as diverged:
            self._params = _read_only(diverged.params, copy=False)
            raise
        self._params = _read_only(params, copy=False)
        return history
