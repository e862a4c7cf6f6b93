"""``DNN``: the seed's object API over the functional core."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from manual_bp import model_file, network, training
from manual_bp import normalization as normalization_step
from manual_bp.architecture import cache_keys, param_shapes
from manual_bp.dropout import draw_masks
from manual_bp.net import Net
from manual_bp.optimizers import OPTIMIZERS, SGD, Optimizer, State
from manual_bp.prepared import PreparedBatch
from manual_bp.validation import (
    check_dtype,
    check_inputs,
    check_learning_rate,
    check_params,
    check_positive_int,
    check_shape,
    check_targets,
)

Array = np.ndarray


class Params(dict):
    """``net.params``: a snapshot of the network's ``W1, B1, ..., WL, BL``.

    Writing into it would change nothing in the network, so it refuses every
    write and names the supported way, assigning a whole dict to
    ``net.params`` (checked and copied).  Copies (``dict(...)``, ``{**...}``,
    ``copy.copy``) are plain dicts that can be changed and assigned back.
    """

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "net.params is a read-only snapshot: writing into it would not change the "
            "network. Assign a whole dict instead, e.g. "
            "net.params = {**net.params, 'W1': new_W1} (checked and copied)"
        )

    # dict's mutators, replaced by one that refuses whatever it is given: their
    # signatures differ from dict's, which mypy reports and which is the point.
    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    update = pop = popitem = setdefault = clear = _refuse  # type: ignore[assignment]

    def copy(self) -> dict[str, Array]:
        return dict(self)

    def __reduce__(self) -> tuple:
        return (dict, (dict(self),))


class Cache(dict):
    """The cache ``DNN.forward`` returns: a dict of ``A0`` and ``Wl``, ``Zl``, ``Al``
    (and ``Y`` when ``forward`` was given it) that also records which network
    made it (``network_id``, a random id given to each ``DNN`` when it is built
    or loaded), so ``compute_gradients`` refuses the cache of another network.
    """

    network_id: str


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
    normalization : keyword only: None (default), "batch" or "layer" for every
        hidden layer, or a list with one per hidden layer: the step
        ``Nl = gammal * Zhatl + betal`` between ``Zl`` and the activation
        (``manual_bp.normalization``), adding ``gammal``, ``betal`` to
        ``params`` and, for batch normalization, ``running``.
    l2 : keyword only: the weight decay ``λ`` in the loss,
        ``L + λ/2 Σ_l ||Wl||²`` (``manual_bp.losses.l2_penalty``; the weights
        only): ``compute_gradients`` adds ``λ Wl`` to every ``dWl``.  Default 0.
    dropout : keyword only: None (default), a drop probability ``p`` in
        [0, 1) for every hidden layer, or a list with one per hidden layer:
        inverted dropout ``Al = Fl ⊙ Ml / (1 − p)`` (``manual_bp.dropout``) in
        training mode, its mask ``Ml`` drawn from the net's seeded generator
        and kept in the cache.

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

    With batch normalization:

    >>> bn = DNN([2, 3, 1], ["relu", "sigmoid"], normalization="batch")
    >>> out, cache = bn.forward(X)          # training mode: batch statistics
    >>> cache["Zhat1"].mean(axis=1).round(12) + 0.0
    array([0., 0., 0.])
    >>> sorted(bn.compute_gradients(out, cache, Y))
    ['A1', 'B1', 'B2', 'N1', 'W1', 'W2', 'Z1', 'Z2', 'Zhat1', 'beta1', 'gamma1']
    >>> bn.running["running_mean1"].shape   # updated by that forward
    (3, 1)

    With weight decay and dropout:

    >>> reg = DNN([2, 4, 1], ["relu", "sigmoid"], l2=0.01, dropout=0.5)
    >>> out, cache = reg.forward(X)          # training mode: a fresh mask M1
    >>> cache["M1"].shape, np.unique(cache["M1"]).tolist()
    ((4, 3), [0.0, 1.0])
    >>> bool(np.array_equal(cache["A1"], cache["F1"] * cache["M1"] / 0.5))
    True
    >>> sorted(reg.compute_gradients(out, cache, Y))
    ['A1', 'B1', 'B2', 'W1', 'W2', 'Z1', 'Z2']
    """

    def __init__(
        self,
        layer_sizes: Sequence[int] | Net,
        activations: Sequence[str] | None = None,
        loss: str | None = None,
        seed: int | None = 0,
        dtype: str | np.dtype = "float64",
        *,
        normalization: str | Sequence[str | None] | None = None,
        l2: float = 0.0,
        dropout: float | Sequence[float] | None = None,
    ) -> None:
        resolved_dtype = check_dtype(dtype)
        if isinstance(layer_sizes, Net):
            lists = {"activations": activations, "loss": loss, "normalization": normalization,
                     "dropout": dropout, "l2": l2 or None}  # fmt: skip
            given = [name for name, value in lists.items() if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: the Net already says them; give a Net or the "
                    "lists (layer_sizes, activations, ...), not both"
                )
            spec = layer_sizes
        else:
            spec = Net.of(layer_sizes, activations, loss, normalization=normalization,
                          dropout=dropout, l2=l2)  # fmt: skip
        sizes, names, loss = spec.layer_sizes, list(spec.activations), spec.loss
        kinds, rates, l2 = spec.normalization, spec.dropout, spec.l2
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed: expected an int >= 0 or None, got {seed!r}")
        if seed is not None and seed < 0:  # numpy's generators refuse it, less clearly
            raise ValueError(f"seed: expected an int >= 0 or None, got {seed}")
        self._configure(sizes, names, loss, resolved_dtype, seed, kinds, rates, l2)
        params = network.init_params(sizes, names, seed, resolved_dtype)
        params.update(normalization_step.init_normalization_params(sizes, kinds, resolved_dtype))
        self._params = _read_only(
            check_params(params, sizes, resolved_dtype, normalization=kinds), copy=False
        )
        self._running = _read_only(
            normalization_step.init_running(sizes, kinds, resolved_dtype), copy=False
        )

    def _configure(
        self,
        sizes: Sequence[int],
        names: Sequence[str],
        loss: str,
        dtype: np.dtype,
        seed: int | None,
        normalization: tuple[str | None, ...] | None = None,
        dropout: tuple[float, ...] = (),
        l2: float = 0.0,
    ) -> None:
        """Everything but the parameters, from checked arguments.  No optimizer
        yet: the first ``fit`` sets it (``load`` restores a saved one)."""
        self._optimizer: Optimizer | None = None
        self._optimizer_state: State = {}
        self.layer_sizes: tuple[int, ...] = tuple(sizes)
        self.activations: tuple[str, ...] = tuple(names)
        self.loss_name: str = loss
        self.dtype: np.dtype = dtype
        self.seed = seed
        # One entry per layer, the output layer's None (``normalization.resolve``).
        self.normalization: tuple[str | None, ...] = normalization or (None,) * len(names)
        # The weight decay and one drop probability per layer (the output's 0).
        self.l2: float = l2
        self.dropout: tuple[float, ...] = dropout or (0.0,) * len(names)
        # The same, as one value (manual_bp.net.Net), and as inference runs it.
        self.net = Net.of(sizes, names, loss, normalization=self.normalization[:-1],
                          dropout=self.dropout[:-1], l2=l2)  # fmt: skip
        self._inference_net = self.net.without_dropout()
        self._running = {}
        self._rng = np.random.default_rng(seed)
        self._network_id = uuid.uuid4().hex
        self._cache_keys = frozenset(
            cache_keys(len(names), normalization=self.normalization, dropout=self.dropout)
        )
        # Cached Wl have the parameters' shapes; A0, Zl and Al have nl rows and m columns.
        weights = {key: shape for key, shape in param_shapes(sizes).items() if key[0] == "W"}
        rows = {
            key: sizes[int(key[1:])]
            for key in self._cache_keys
            if key[0] in "AZFM" and key[1:].isdigit()
        }
        self._cache_shapes: dict[str, dict[str, Any]] = {"W": weights, "A": rows}

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to ``path`` as a plain ``.npz`` archive (no pickle).

        It holds the architecture (``layer_sizes``, ``activations``, ``loss``,
        ``dtype``, ``seed``), a format version and every ``Wl``, ``Bl``, bit for
        bit; ``DNN.load(path)`` gives back an equal network.  The name is used
        as given (no ``.npz`` is appended).  It also holds what training
        resumes from, so that ``fit`` after ``load`` continues exactly as it
        would have without the save: ``l2``, ``dropout``, the optimizer of the
        last ``fit`` with its state (step count, moments) and the state of the
        net's generator (which shuffles the mini-batches and draws the dropout
        masks).  A normalized network also keeps its ``normalization``,
        ``gammal``, ``betal`` and the running statistics (``running``), bit for
        bit.
        """
        trained = model_file.TrainingState(
            self.l2, self.dropout, self._rng.bit_generator.state, self._optimizer,
            self._optimizer_state if self._optimizer is not None else None,
        )  # fmt: skip
        model_file.write(
            path, self.net, self.dtype, self.seed, self._params, training=trained,
            running=self._running,
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike) -> DNN:
        """The network saved by ``save``, validated before it is built.

        Raises ``manual_bp.model_file.ModelFileError`` (a ``ValueError``) naming
        the file and the problem: missing, unreadable or truncated, a newer
        format version, missing or extra entries, wrong shapes or dtypes,
        non-finite values.
        """
        saved = model_file.read(path)
        net = cls.__new__(cls)
        trained = saved.training
        net._configure(
            saved.layer_sizes, saved.activations, saved.loss, saved.dtype, saved.seed,
            saved.normalization or None, dropout=trained.dropout, l2=trained.l2,
        )  # fmt: skip
        net._params = _read_only(saved.params, copy=False)
        net._running = _read_only(saved.running, copy=False)
        if trained.rng_state is not None:
            net._rng.bit_generator.state = trained.rng_state
        if trained.optimizer is not None and trained.optimizer_state is not None:
            net._optimizer, net._optimizer_state = trained.optimizer, trained.optimizer_state
        return net

    @property
    def depth(self) -> int:
        """L, the number of layers with weights."""
        return len(self.activations)

    @property
    def params(self) -> Params:
        """``W1`` (n1, n0), ``B1`` (n1, 1), ..., ``WL``, ``BL`` (read-only arrays).

        A read-only snapshot: ``net.params["W1"] = ...`` raises a ``TypeError``
        naming the supported way, assigning a whole dict, which replaces them
        all; it is checked for keys, shapes, dtype and finiteness, and copied,
        so the caller's arrays stay theirs.
        """
        return Params(self._params)

    @params.setter
    def params(self, new_params: Mapping[str, Array]) -> None:
        checked = check_params(
            new_params, self.layer_sizes, self.dtype, normalization=self.normalization
        )
        self._params = _read_only(checked, copy=True)

    @property
    def running(self) -> dict[str, Array]:
        """The running statistics of batch normalization (read-only arrays):
        ``running_meanl`` and ``running_varl`` (nl, 1) per batch-normalized
        layer, used by ``forward(X, training=False)`` and ``predict``; empty
        without batch normalization."""
        return dict(self._running)

    def _update_running(self, cache: Mapping[str, Array]) -> None:
        if self._running:
            running = normalization_step.update_running(self._running, cache, self.normalization)
            self._running = _read_only(running, copy=False)

    def __repr__(self) -> str:
        hidden = list(self.normalization[:-1])
        return (
            f"DNN(layer_sizes={list(self.layer_sizes)}, "
            f"activations={list(self.activations)}, loss={self.loss_name!r}, "
            f"seed={self.seed!r}, dtype={self.dtype.name!r}"
            + (f", normalization={hidden!r}" if any(hidden) else "")
            + (f", l2={self.l2!r}" if self.l2 else "")
            + (f", dropout={list(self.dropout[:-1])!r}" if any(self.dropout) else "")
            + ")"
        )

    def _inputs(self, X: object) -> Array:
        return check_inputs(X, self.layer_sizes[0], self.dtype)

    def _targets(self, Y: object, m: int) -> Array:
        return check_targets(Y, (self.layer_sizes[-1], m), self.loss_name, self.dtype)

    def forward(self, X: object, Y: object = None, *, training: bool = True) -> tuple[Array, Cache]:
        """``out = AL`` of shape (nL, m) and the cache for ``compute_gradients``.

        ``X`` has shape (n0, m), one sample per column.  The cache holds ``A0``
        and ``Wl``, ``Zl``, ``Al`` for every layer (see ``manual_bp.network``),
        and the targets ``Y`` (nL, m) when given, as in the seed:
        ``out, cache = net.forward(X, Y)``, then ``net.compute_gradients(out, cache)``.

        A normalized layer also caches ``gammal``, ``mul``, ``varl``,
        ``inv_stdl``, ``Zhatl``, ``Nl``.  With batch normalization,
        ``training=True`` normalizes by the batch's statistics and updates
        ``running`` from them (``manual_bp.normalization.update_running``);
        ``training=False`` uses ``running`` and changes nothing (its cache holds
        ``running_meanl``, ``running_varl`` instead of ``mul``, ``varl``, and
        gives no gradients).

        With dropout, ``training=True`` draws a fresh mask ``Ml`` for every
        dropped layer from the net's generator (seeded by ``seed``) and caches
        it with ``Fl = f_l(Zl)``: ``Al = Fl ⊙ Ml / (1 − pl)``;
        ``training=False`` drops nothing.
        """
        inputs = self._inputs(X)
        targets = None if Y is None else self._targets(Y, inputs.shape[1])
        if not isinstance(training, bool):
            raise TypeError(f"training: expected True or False, got {training!r}")
        if not training and self._running:
            out, cache = network.forward(
                self._params, inputs, self._inference_net, running=self._running
            )
        elif training and self.net.dropped:
            masks = draw_masks(
                self.layer_sizes, inputs.shape[1], self.dropout, self._rng, self.dtype
            )
            out, cache = network.forward(self._params, inputs, self.net, masks=masks)
            self._update_running(cache)
        elif not self.net.normalized:
            # The net's params and the checked X share self.dtype: no dtype dispatch.
            out, cache = network.forward_numpy(self._params, inputs, self.activations)
        else:  # training without dropout, or a layer-normalized net's inference
            out, cache = network.forward(self._params, inputs, self._inference_net)
            self._update_running(cache)
        cache = Cache(cache)
        if targets is not None:
            cache["Y"] = targets
        cache.network_id = self._network_id
        return out, cache

    def prepare(self, X: object, Y: object) -> PreparedBatch:
        """One batch checked once, for many gradient steps on it: a ``PreparedBatch``.

        ``X`` (n0, m) and ``Y`` (nL, m) are checked as ``forward(X, Y)`` checks
        them and copied (read-only).  ``batch.compute_gradients()`` then
        equals ``compute_gradients(*forward(X, Y))`` at this network's
        parameters of the moment, without checking ``X``, ``Y`` or a cache
        again: for a plain net (no dropout, no normalization) it is the bare
        NumPy pass (``manual_bp.prepared``), for full-batch gradient descent.

        >>> import numpy as np
        >>> net = DNN([2, 3, 1], seed=0)
        >>> X, Y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0, 0.0]])
        >>> batch = net.prepare(X, Y)
        >>> for _ in range(100):
        ...     net.step(batch.compute_gradients(), 1.0)
        >>> bool(batch.loss() < 0.1)
        True
        """
        inputs = self._inputs(X)
        targets = self._targets(Y, inputs.shape[1])
        frozen = _read_only({"X": inputs, "Y": targets}, copy=True)  # never the caller's arrays
        return PreparedBatch(self, frozen["X"], frozen["Y"])

    def predict(self, X: object) -> Array:
        """``AL`` of shape (nL, m), in inference mode (``forward(X, training=False)``)."""
        return self.forward(X, training=False)[0]

    def loss(self, X: object, Y: object) -> float:
        """The batch-mean loss, computed stably from the logits.

        A batch-normalized net takes the batch's statistics (the loss whose
        gradients ``compute_gradients`` gives) and leaves ``running`` as it is.
        It includes the weight decay ``l2_penalty`` and no dropout mask (the
        masks are a training step's, drawn by ``forward``).
        """
        inputs = self._inputs(X)
        targets = self._targets(Y, inputs.shape[1])
        return float(network.batch_loss(self._params, inputs, targets, self._inference_net))

    def compute_gradients(
        self,
        out: Array,
        cache: Mapping[str, Array],
        Y: object = None,
        input_gradient: bool = False,
        *,
        staged: bool = False,
    ) -> dict[str, Array]:
        """dL/dv for every ``Wl``, ``Bl``, ``Zl`` and ``Al`` (l < L) of the cache.

        ``L`` is the mean loss over the batch, so each ``dWl`` and ``dBl`` is
        the average of the per-sample gradients.  With ``input_gradient=True``
        the result also holds ``A0`` = dL/dX.  ``Y`` is the one given to
        ``forward(X, Y)`` (kept in the cache) or given here; given both ways,
        the two must be equal.

        The cache must come from this network's ``forward``: a cache that
        another ``DNN`` returned is refused.  A plain dict (for example from
        the functional ``manual_bp.forward``, or a copy) is accepted when it
        holds every entry with the shapes and dtype of this network.

        A normalized layer adds ``gammal``, ``betal``, ``Nl`` and ``Zhatl``;
        ``staged=True`` takes its backward stage by stage and adds ``mul``,
        ``varl`` (``manual_bp.normalization``; the closed form is the default).

        With weight decay every ``dWl`` includes ``l2 Wl`` (of the ``Wl`` the
        forward pass used); with dropout the backward multiplies by the mask
        ``Ml`` that ``forward`` cached, never a new one.
        """
        self._check_cache(out, cache)
        targets = self._cached_or_given_targets(cache, Y)
        return network.backward(
            cache, targets, self.net, input_gradient=bool(input_gradient), staged=bool(staged)
        )

    def _cached_or_given_targets(self, cache: Mapping[str, Array], Y: object) -> Array:
        m = cache["A0"].shape[1]
        cached = cache.get("Y")
        if Y is None and cached is None:
            raise TypeError(
                f"Y: expected the targets ({self.layer_sizes[-1]}, {m}), either here, "
                "compute_gradients(out, cache, Y), or to forward, net.forward(X, Y)"
            )
        if cached is None:
            return self._targets(Y, m)
        try:
            stored = self._targets(cached, m)
        except (TypeError, ValueError) as error:
            raise type(error)(f"cache['Y']: {error}") from None
        if Y is not None and not np.array_equal(self._targets(Y, m), stored):
            raise ValueError(
                "Y: differs from the Y given to forward (kept in cache['Y']); "
                "give Y once, to forward or to compute_gradients, or the same Y both times"
            )
        return stored

    def _check_cache(self, out: Array, cache: Mapping[str, Array]) -> None:
        if not isinstance(cache, Mapping):
            raise TypeError(
                f"cache: expected the dict returned by forward, got {type(cache).__name__}"
            )
        if any(key.startswith("running_") for key in cache):
            raise ValueError(
                "cache: from forward(X, training=False), which normalizes by the running "
                "statistics; gradients need a training-mode cache (forward(X))"
            )
        owner = getattr(cache, "network_id", None)
        if owner is not None and owner != self._network_id:
            raise ValueError(
                f"cache: expected the cache of this network's forward, got one that another "
                f"network returned (this one is {self!r}); call this network's forward"
            )
        if not self._cache_keys <= cache.keys():
            missing = sorted(self._cache_keys - set(cache))
            raise ValueError(
                f"cache: expected the dict returned by this network's forward, missing {missing}"
            )
        m = np.shape(cache["A0"])[1] if np.ndim(cache["A0"]) == 2 else None
        for key, shape in self._cache_shapes["W"].items():
            self._check_cache_entry(cache[key], key, shape)
        for key, rows in self._cache_shapes["A"].items():
            self._check_cache_entry(cache[key], key, (rows, m))
        last = cache[f"A{self.depth}"]
        out = np.asarray(out)
        check_shape(out, "out", last.shape)
        if out is not last and not np.array_equal(out, last):
            raise ValueError("out: expected the output AL stored in cache, got different values")

    def _check_cache_entry(self, value: object, key: str, shape: tuple) -> None:
        if not isinstance(value, np.ndarray):
            raise TypeError(f"cache[{key!r}]: expected an array, got {type(value).__name__}")
        if value.shape != shape or value.dtype != self.dtype:
            raise ValueError(
                f"cache[{key!r}]: expected a {self.dtype} array of shape {shape} "
                f"from this network's forward, got {value.dtype} {value.shape}"
            )

    def step(self, grads: Mapping[str, Array], learning_rate: float) -> None:
        """One SGD update of every ``Wl`` and ``Bl``: ``Wl <- Wl - lr dWl``.

        The network's parameters are replaced by new arrays; no array is
        written in place, so caches and caller-held arrays stay valid.
        """
        lr = check_learning_rate(learning_rate)
        if not isinstance(grads, Mapping):
            raise TypeError(f"grads: expected a dict of arrays, got {type(grads).__name__}")
        update = {key: grads[key] for key in self._params if key in grads}
        check_params(
            update, self.layer_sizes, self.dtype, name="grads", normalization=self.normalization
        )
        self._params = _read_only(training.sgd_step(self._params, update, lr), copy=False)

    @property
    def optimizer(self) -> Optimizer | None:
        """The optimizer of the last ``fit`` (None before the first)."""
        return self._optimizer

    @property
    def optimizer_state(self) -> State:
        """Its state after the last ``fit`` (step count, moments), which the next
        ``fit`` with an equal optimizer continues from."""
        return self._optimizer_state

    def fit(
        self,
        X: object,
        Y: object,
        epochs: int,
        learning_rate: float | None = None,
        batch_size: int | None = None,
        callback: Callable[[int, float], object] | None = None,
        optimizer: Optimizer | None = None,
    ) -> list[float]:
        """Mini-batch training; returns the mean training loss after each epoch.

        Give either ``learning_rate`` (plain SGD) or ``optimizer``, one of
        ``manual_bp.optimizers`` (``Momentum``, ``RMSProp``, ``Adam``, ...).
        The optimizer's state is kept on the net: a later ``fit`` with an equal
        optimizer continues it (ten one-epoch fits equal one ten-epoch fit);
        another optimizer starts from its ``init``.

        ``batch_size=None`` uses the whole batch each step.  Mini-batches are
        shuffled, and dropout masks drawn, by the generator seeded with
        ``seed``.  The losses include the weight decay (without masks).  If an epoch ends with
        a NaN or inf, ``training.TrainingDiverged`` (a ``FloatingPointError``)
        names the epoch and the parameters and optimizer state stay those of
        the last finite epoch.  ``callback(epoch, loss)``, if given, is called
        after each epoch (1, 2, ...) with its mean loss, for progress displays;
        its return value is not used.
        """
        inputs = self._inputs(X)
        targets = self._targets(Y, inputs.shape[1])
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        optimizer = self._fit_optimizer(learning_rate, optimizer)
        if batch_size is not None:
            batch_size = check_positive_int(batch_size, "batch_size")
        if callback is not None and not callable(callback):
            raise TypeError(
                f"callback: expected a function callback(epoch, loss), got {callback!r}"
            )
        state = self._optimizer_state if optimizer == self._optimizer else None
        try:
            params, history, state = training.fit(
                self._params, inputs, targets, self.net, optimizer,
                training.Schedule(epochs, batch_size, self._rng), state=state,
                hooks=training.Hooks(
                    on_batch=self._update_running if self._running else None, on_epoch=callback
                ),
            )  # fmt: skip
        except training.TrainingDiverged as diverged:
            self._params = _read_only(diverged.params, copy=False)
            self._optimizer, self._optimizer_state = optimizer, diverged.state
            raise
        self._params = _read_only(params, copy=False)
        self._optimizer, self._optimizer_state = optimizer, state
        return history

    @staticmethod
    def _fit_optimizer(learning_rate: object, optimizer: object) -> Optimizer:
        """``SGD(learning_rate)`` or ``optimizer``: exactly one of them."""
        if optimizer is None:
            if learning_rate is None:
                raise TypeError(
                    "learning_rate: expected a learning rate (plain SGD) or an optimizer=, "
                    "got neither"
                )
            return SGD(check_learning_rate(learning_rate))
        if learning_rate is not None:
            raise TypeError(
                f"learning_rate: the optimizer {optimizer!r} has its own learning rate; "
                f"give learning_rate or optimizer, not both"
            )
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                "optimizer: expected one of manual_bp.optimizers "
                f"({', '.join(kind.__name__ for kind in OPTIMIZERS.values())}), "
                f"got {type(optimizer).__name__} {optimizer!r}"
            )
        return optimizer
