"""A prepared batch: one ``(X, Y)`` checked once, then the bare NumPy pass over it.

Full-batch gradient descent (the deeplearning.ai course's loop) computes the
gradients of the same ``X`` and ``Y`` thousands of times.  ``DNN.forward``
and ``DNN.compute_gradients`` check ``X``, ``Y`` and the cache on every call,
which at the seed's tiny size costs as much as the arithmetic.  A prepared
batch checks ``X`` and ``Y`` once, keeps its own read-only copies, and then
runs the same steps as ``network.forward_numpy`` and ``network.backward``::

    forward,  l = 1..L:   Zl = Wl A(l-1)         (written into Zl's buffer)
                          Zl += Bl
                          Al = f_l(Zl)           (Activation.forward_into)
    backward, l = L..1:   dZL = the loss's dZ    (losses.output_gradient)
                          dZl = f_l'(Zl)^T dAl   (Activation.backward)
                          dWl, dBl, dA(l-1)      (affine.backward)
                          dWl += l2 Wl           (losses.l2_penalty_gradient)

with the network's parameters as they are at each call (the ``DNN`` checked
them when they were set).  ``Zl`` and ``Al`` live in arrays allocated once,
at ``prepare``, and never leave this object; every gradient it returns is a
new array.  ``property_tests/test_prepared.py`` proves the gradients bitwise
equal to ``compute_gradients(*forward(X, Y))``.

A net with dropout (a new mask every step) or normalization (batch
statistics, the running averages) takes that general path itself, so
``compute_gradients()`` means the same thing for every net.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from manual_bp import affine, threads
from manual_bp.activations import ACTIVATIONS
from manual_bp.architecture import layer_keys
from manual_bp.losses import LOSSES, l2_penalty_gradient, output_gradient
from manual_bp.net import Net

Array = np.ndarray


class Network(Protocol):
    """What a prepared batch reads of its network (a ``DNN``)."""

    net: Net

    @property
    def params(self) -> Mapping[str, Array]: ...

    def forward(self, X: Any, Y: Any = None, *, training: bool = True) -> tuple[Array, Any]: ...

    def compute_gradients(self, out: Array, cache: Any) -> dict[str, Array]: ...

    def loss(self, X: Any, Y: Any) -> float: ...


class PreparedBatch:
    """The gradients of one ``DNN`` on one fixed batch, ``X`` and ``Y`` checked once.

    Made by ``DNN.prepare(X, Y)``; see the module notes.

    Attributes
    ----------
    X : (n0, m) read-only array, the checked copy of the ``X`` given
    Y : (nL, m) read-only array, the checked copy of the ``Y`` given

    Examples
    --------
    >>> import numpy as np
    >>> from manual_bp import DNN
    >>> net = DNN([2, 3, 1], ["tanh", "sigmoid"], seed=0)
    >>> X = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, -0.5]])
    >>> Y = np.array([[1.0, 0.0, 1.0]])
    >>> batch = net.prepare(X, Y)
    >>> grads = batch.compute_gradients()
    >>> slow = net.compute_gradients(*net.forward(X, Y))
    >>> all(np.array_equal(grads[key], slow[key]) for key in slow)
    True
    >>> net.step(grads, 0.5)            # the batch reads the new parameters
    >>> batch.loss() < net.loss(X, Y) + 1e-12
    True
    """

    def __init__(self, dnn: Network, X: Array, Y: Array) -> None:
        """From checked, read-only ``X`` and ``Y`` of ``dnn``'s dtype (``DNN.prepare``)."""
        self._dnn = dnn
        self.X, self.Y = X, Y
        net = dnn.net
        self._plain = not (net.normalized or net.dropped)
        self._keys = layer_keys(net.depth)
        self._activations = [ACTIVATIONS[name] for name in net.activations]
        self._loss = LOSSES[net.loss]
        self._l2 = net.l2
        m, sizes = X.shape[1], net.layer_sizes
        self._Z = [np.empty((n, m), X.dtype) for n in sizes[1:]]
        self._A = [np.empty((n, m), X.dtype) for n in sizes[1:]]
        # As in network.forward_numpy: the thread policy only for products big
        # enough to gain from it (the shapes are fixed, so it is decided once).
        largest = max(n * n_prev for n, n_prev in zip(sizes[1:], sizes, strict=False)) * m
        self._threaded = largest > threads.SINGLE_THREAD_WORK

    def __repr__(self) -> str:
        return f"<PreparedBatch of {self._dnn!r}, m={self.X.shape[1]}>"

    def compute_gradients(self) -> dict[str, Array]:
        """``dnn.compute_gradients(*dnn.forward(X, Y))`` for the prepared batch.

        Returns
        -------
        grads : dict of new arrays, dL/dv for ``Wl``, ``Bl``, ``Zl`` (l = 1..L)
            and ``Al`` (l < L), as ``DNN.compute_gradients`` gives them, at the
            network's parameters as they are now
        """
        dnn = self._dnn
        if not self._plain:
            return dnn.compute_gradients(*dnn.forward(self.X, self.Y))
        gemms = threads.gemms() if self._threaded else None
        matmul = np.matmul if gemms is None else gemms.matmul
        try:
            return self._plain_gradients(dnn.params, matmul)
        finally:
            if gemms is not None:
                gemms.restore()

    def _plain_gradients(
        self, params: Mapping[str, Array], matmul: affine.Matmul
    ) -> dict[str, Array]:
        keys, activations, Zs, As, X = self._keys, self._activations, self._Z, self._A, self.X
        A = X
        for key, activation, Z_out, A_out in zip(keys, activations, Zs, As, strict=True):
            Z = matmul(params[key.W], A, out=Z_out)
            Z += params[key.B]
            A = activation.forward_into(Z, A_out)
        grads: dict[str, Array] = {}
        dZ = output_gradient(self._loss, activations[-1], Zs[-1], A, self.Y)
        for l in range(len(keys) - 1, -1, -1):
            key = keys[l]
            grads[key.Z] = dZ
            W = params[key.W]
            dW, dB, dA_prev = affine.backward(dZ, As[l - 1] if l else X, W if l else None, matmul)
            if self._l2:  # the weights only: the biases are not decayed
                dW += l2_penalty_gradient(W, self._l2)
            grads[key.W], grads[key.B] = dW, dB
            if dA_prev is not None:
                grads[key.A_prev] = dA_prev
                dZ = activations[l - 1].backward(dA_prev, Zs[l - 1], As[l - 1])
        return grads

    def loss(self) -> float:
        """``dnn.loss(X, Y)`` for the prepared batch: the batch-mean loss with
        the weight decay, at the network's parameters as they are now."""
        return self._dnn.loss(self.X, self.Y)
