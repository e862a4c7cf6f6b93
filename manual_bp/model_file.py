"""Saving and loading a ``DNN`` as a plain ``.npz`` archive (no pickle).

The archive holds one array per entry:

* ``format_version``: an int, ``FORMAT_VERSION`` of the manual-bp that wrote it;
* the architecture: ``layer_sizes`` (int64, ``[n0, ..., nL]``), ``activations``
  (L strings), ``loss`` and ``dtype`` (strings), ``seed`` (int64, -1 for None);
* the parameters ``W1`` (n1, n0), ``B1`` (n1, 1), ..., ``WL``, ``BL`` in the
  network's dtype, bit for bit;
* since version 2, what training needs to resume exactly (``TRAINING_KEYS``):
  ``l2`` (float64), ``dropout`` (float64, one drop probability per layer),
  ``rng_state`` (the JSON of the generator's ``bit_generator.state``: the
  one generator that shuffles the mini-batches and draws the dropout
  masks), ``optimizer`` (JSON: its name and every field, or ``null``
  before the first ``fit``) and its state: ``optimizer_t`` (int64, the step
  count, -1 for an optimizer that keeps none) and one array
  ``optimizer.<slot>.<key>`` per accumulator and parameter, in the
  network's dtype, bit for bit.
* since version 2, a normalized network also: ``normalization`` (L strings,
  ``"batch"``, ``"layer"`` or ``""`` for none, the output layer's ``""``),
  every normalized layer's ``gammal``, ``betal`` (nl, 1), and every
  batch-normalized layer's running statistics ``running_meanl``,
  ``running_varl`` (nl, 1), bit for bit.

A version-1 file (written before these entries existed) still loads: no
decay, no dropout, no optimizer, and the generator seeded from ``seed``.

``read`` validates everything before a network is built and raises
``ModelFileError`` (a ``ValueError``) naming the file and what is wrong: a
missing or unreadable (truncated) file, a newer format version, missing or
extra entries, wrong shapes or dtypes, non-finite values.  ``numpy.load`` is
called with ``allow_pickle=False``, so loading a file runs no code from it.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manual_bp.architecture import param_shapes
from manual_bp.dropout import resolve as resolve_dropout
from manual_bp.net import Net
from manual_bp.normalization import resolve
from manual_bp.optimizers import OPTIMIZERS, Optimizer, State
from manual_bp.validation import (
    check_activations,
    check_dtype,
    check_layer_sizes,
    check_loss_pair,
    check_params,
)

FORMAT_VERSION = 2
# The version that added the normalization entries (and the training state).
NORMALIZATION_VERSION = 2
ARCHITECTURE_KEYS = ("format_version", "layer_sizes", "activations", "loss", "dtype", "seed")
TRAINING_KEYS = ("l2", "dropout", "rng_state", "optimizer", "optimizer_t")
NO_SEED = -1
NO_STEP_COUNT = -1


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message names the file and the reason."""


@dataclass(frozen=True)
class TrainingState:
    """What training resumes from: the regularization settings, the generator's
    state (``None``: seeded from ``seed``) and the optimizer with its state."""

    l2: float = 0.0
    dropout: tuple[float, ...] = ()
    rng_state: Mapping[str, Any] | None = None
    optimizer: Optimizer | None = None
    optimizer_state: State | None = None


@dataclass(frozen=True)
class SavedModel:
    """What a model file holds, validated."""

    layer_sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    dtype: np.dtype
    seed: int | None
    params: dict[str, np.ndarray]
    training: TrainingState = field(default_factory=TrainingState)
    # One entry per layer (None, "batch", "layer"), or () for a network without
    # normalization; the running statistics of its batch-normalized layers.
    normalization: tuple[str | None, ...] = ()
    running: dict[str, np.ndarray] = field(default_factory=dict)


def _training_entries(training: TrainingState, depth: int) -> dict[str, np.ndarray]:
    """The version-2 entries of ``training``."""
    optimizer, state = training.optimizer, training.optimizer_state or {}
    described = None
    if optimizer is not None:
        described = {"name": optimizer.name, "fields": optimizer.hyperparameters()}
    entries = {
        "l2": np.array(training.l2, dtype=np.float64),
        "dropout": np.array(training.dropout or (0.0,) * depth, dtype=np.float64),
        "rng_state": np.array(json.dumps(training.rng_state), dtype=str),
        "optimizer": np.array(json.dumps(described), dtype=str),
        "optimizer_t": np.array(state.get("t", NO_STEP_COUNT), dtype=np.int64),
    }
    for slot, arrays in state.items():
        if slot != "t":
            entries.update({f"optimizer.{slot}.{key}": np.asarray(v) for key, v in arrays.items()})
    return entries


def _read_training(
    entries: dict[str, np.ndarray], depth: int, params: Mapping[str, np.ndarray], where: str
) -> TrainingState:
    """The training state of a version-2 file, from its training entries."""
    missing = [key for key in TRAINING_KEYS if key not in entries]
    if missing:
        raise ModelFileError(f"{where}: missing entries {missing}")
    l2 = entries.pop("l2")
    rates = entries.pop("dropout")
    texts = {key: _scalar(entries, key, "U", where) for key in ("rng_state", "optimizer")}
    t = _scalar(entries, "optimizer_t", "i", where)
    del entries["rng_state"], entries["optimizer"], entries["optimizer_t"]
    slots = {key: entries.pop(key) for key in list(entries) if key.startswith("optimizer.")}
    if l2.shape != () or l2.dtype != np.float64 or not (np.isfinite(l2) and l2 >= 0):
        raise ModelFileError(f"{where}: entry 'l2' should be a float >= 0, got {l2!r}")
    if rates.shape != (depth,) or rates.dtype != np.float64:
        raise ModelFileError(
            f"{where}: entry 'dropout' should be {depth} float64 drop probabilities, "
            f"got {rates.dtype} of shape {rates.shape}"
        )
    try:
        dropout = resolve_dropout([float(r) for r in rates[:-1]], depth)
        if rates[-1] != 0:
            raise ValueError(f"dropout: the output layer has none, got {float(rates[-1])}")
        rng_state, described = (json.loads(texts[key]) for key in ("rng_state", "optimizer"))
        if rng_state is not None:
            np.random.default_rng().bit_generator.state = rng_state  # validates it
        optimizer, state = None, None
        if described is not None:
            optimizer = OPTIMIZERS[described["name"]](**described["fields"])
            state = optimizer.init(params)
            expected = {f"optimizer.{slot}.{key}" for slot in optimizer.SLOTS for key in params}
            if set(slots) != expected:
                raise ValueError(
                    f"optimizer state: expected the entries {sorted(expected)}, got {sorted(slots)}"
                )
            for name, array in slots.items():
                _, slot, key = name.split(".", 2)
                state[slot][key] = array
            if optimizer.counts_steps:
                state["t"] = t
            optimizer._check_state(state, params)
        elif slots:
            raise ValueError(f"optimizer state without an optimizer: {sorted(slots)}")
    except (TypeError, ValueError, KeyError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where}: {type(error).__name__}: {error}") from None
    return TrainingState(float(l2), dropout if any(dropout) else (), rng_state, optimizer, state)


def parameter_keys(depth: int) -> list[str]:
    return [f"{v}{l}" for l in range(1, depth + 1) for v in "WB"]


def running_keys(normalization: tuple[str | None, ...]) -> list[str]:
    """``running_meanl``, ``running_varl`` of every batch-normalized layer ``l``."""
    return [
        f"{name}{l}"
        for l, kind in enumerate(normalization, start=1)
        if kind == "batch"
        for name in ("running_mean", "running_var")
    ]


def write(
    path: str | os.PathLike,
    net: Net,
    dtype: np.dtype,
    seed: int | None,
    params: Mapping[str, np.ndarray],
    *,
    training: TrainingState | None = None,
    running: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write the archive to ``path`` exactly (``numpy.savez`` would append ``.npz``).

    ``net`` gives the layer sizes, activations, loss and, for a normalized
    network, its ``normalization``; ``params`` then holds its ``gammal``,
    ``betal`` too, and ``running`` the running statistics of the
    batch-normalized layers.
    """
    path = Path(path)
    normalization, depth = net.normalization, net.depth
    version = FORMAT_VERSION
    entries: dict[str, Any] = {
        "format_version": np.array(version, dtype=np.int64),
        "layer_sizes": np.array(net.layer_sizes, dtype=np.int64),
        "activations": np.array(net.activations, dtype=str),
        "loss": np.array(net.loss, dtype=str),
        "dtype": np.array(np.dtype(dtype).name, dtype=str),
        "seed": np.array(NO_SEED if seed is None else seed, dtype=np.int64),
    }
    entries.update({key: np.asarray(params[key]) for key in parameter_keys(depth)})
    entries.update(_training_entries(training or TrainingState(), depth))
    if net.normalized:
        entries["normalization"] = np.array([kind or "" for kind in normalization], dtype=str)
        for key in param_shapes(net.layer_sizes, normalization=normalization):
            entries[key] = np.asarray(params[key])
        for key in running_keys(normalization):
            entries[key] = np.asarray((running or {})[key])
    with path.open("wb") as file:
        np.savez(file, **entries)
    return path


def _scalar(entries: Mapping[str, np.ndarray], key: str, kind: str, where: str) -> Any:
    value = entries[key]
    if value.shape != () or value.dtype.kind not in kind:
        raise ModelFileError(
            f"{where}: entry {key!r} should be a single "
            f"{'integer' if kind == 'i' else 'string'}, got {value.dtype} of shape {value.shape}"
        )
    return value.item()


def _read_entries(path: Path, where: str) -> dict[str, np.ndarray]:
    if not path.exists():
        raise ModelFileError(f"{where}: no such file")
    if path.is_dir():
        raise ModelFileError(f"{where}: is a folder, expected a model file (.npz)")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a plain .npy: one array
            raise ModelFileError(
                f"{where}: expected an .npz archive written by DNN.save, got a single array"
            )
        with archive:
            # Arrays are read lazily: a truncated entry fails here, inside the try.
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(
            f"{where}: cannot read it as an .npz archive, truncated or not a model file "
            f"({type(error).__name__}: {error})"
        ) from None


def read(path: str | os.PathLike) -> SavedModel:
    """The validated contents of a model file written by ``write``."""
    path = Path(path)
    where = f"model file {str(path)!r}"
    entries = _read_entries(path, where)
    if "format_version" not in entries:
        raise ModelFileError(
            f"{where}: no 'format_version' entry, not a model written by DNN.save "
            f"(it holds {sorted(entries)})"
        )
    version = _scalar(entries, "format_version", "i", where)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{where}: format version {version} is newer than this manual-bp reads "
            f"({FORMAT_VERSION}); upgrade manual-bp to load it"
        )
    if version < 1:
        raise ModelFileError(f"{where}: format version {version} is not a valid version")
    missing = [key for key in ARCHITECTURE_KEYS if key not in entries]
    if missing:
        raise ModelFileError(f"{where}: missing entries {missing}")
    sizes_entry, names_entry = entries["layer_sizes"], entries["activations"]
    if sizes_entry.ndim != 1 or sizes_entry.dtype.kind != "i":
        raise ModelFileError(
            f"{where}: entry 'layer_sizes' should be a 1-D integer array, "
            f"got {sizes_entry.dtype} of shape {sizes_entry.shape}"
        )
    if names_entry.ndim != 1 or names_entry.dtype.kind != "U":
        raise ModelFileError(
            f"{where}: entry 'activations' should be a 1-D array of strings, "
            f"got {names_entry.dtype} of shape {names_entry.shape}"
        )
    loss = _scalar(entries, "loss", "U", where)
    dtype_name = _scalar(entries, "dtype", "U", where)
    seed = _scalar(entries, "seed", "i", where)
    try:
        sizes = check_layer_sizes([int(n) for n in sizes_entry])
        activations = check_activations([str(name) for name in names_entry], len(sizes) - 1)
        check_loss_pair(loss, activations[-1], sizes[-1])
        dtype = check_dtype(dtype_name)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: {error}") from None
    if seed < NO_SEED:
        raise ModelFileError(f"{where}: entry 'seed' should be >= 0 (or -1 for None), got {seed}")
    training_entries = {}
    if version >= 2:
        training_entries = {
            key: entries.pop(key)
            for key in list(entries)
            if key in TRAINING_KEYS or key.startswith("optimizer.")
        }
    normalization = _read_normalization(entries, version, len(activations), where)
    names = param_shapes(sizes, normalization=normalization)
    architecture = set(ARCHITECTURE_KEYS) | ({"normalization"} if normalization else set())
    expected = architecture | set(names) | set(running_keys(normalization))
    if set(entries) != expected:
        missing = sorted(expected - set(entries))
        extra = sorted(set(entries) - expected)
        raise ModelFileError(
            f"{where}: for layer sizes {sizes} expected the parameters "
            f"{list(names) + running_keys(normalization)}; missing {missing}, extra {extra}"
        )
    params = {key: entries[key] for key in names}
    try:
        params = check_params(params, sizes, dtype, normalization=normalization)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: {error}") from None
    training = TrainingState()
    if version >= 2:
        training = _read_training(training_entries, len(activations), params, where)
    return SavedModel(
        layer_sizes=tuple(sizes),
        activations=tuple(activations),
        loss=loss,
        dtype=dtype,
        seed=None if seed == NO_SEED else int(seed),
        params=params,
        training=training,
        normalization=normalization,
        running=_read_running(entries, sizes, dtype, normalization, where),
    )


def _read_normalization(
    entries: Mapping[str, np.ndarray], version: int, depth: int, where: str
) -> tuple[str | None, ...]:
    """The ``normalization`` entry as one kind per layer, or ``()`` without one."""
    if "normalization" not in entries:
        return ()
    entry = entries["normalization"]
    if version < NORMALIZATION_VERSION:
        raise ModelFileError(
            f"{where}: entry 'normalization' needs format version {NORMALIZATION_VERSION}, "
            f"the file says {version}"
        )
    if entry.ndim != 1 or entry.dtype.kind != "U" or entry.shape[0] != depth:
        raise ModelFileError(
            f"{where}: entry 'normalization' should be {depth} strings (one per layer), "
            f"got {entry.dtype} of shape {entry.shape}"
        )
    kinds = [str(kind) or None for kind in entry]
    try:
        resolved = resolve(kinds[:-1], depth)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: {error}") from None
    if kinds[-1] is not None or not any(resolved):
        raise ModelFileError(
            f"{where}: entry 'normalization' should normalize some hidden layers and not the "
            f"output layer, got {list(entry)}"
        )
    return resolved


def _read_running(
    entries: Mapping[str, np.ndarray],
    sizes: list[int],
    dtype: np.dtype,
    normalization: tuple[str | None, ...],
    where: str,
) -> dict[str, np.ndarray]:
    """The running statistics, each ``(nl, 1)`` in ``dtype``, finite; variances >= 0."""
    running = {}
    for key in running_keys(normalization):
        array = entries[key]
        shape = (sizes[int(key[len(key.rstrip("0123456789")) :])], 1)
        if array.dtype != dtype or array.shape != shape:
            raise ModelFileError(
                f"{where}: entry {key!r} should be {dtype} of shape {shape}, "
                f"got {array.dtype} of shape {array.shape}"
            )
        if not np.all(np.isfinite(array)) or (key.startswith("running_var") and np.any(array < 0)):
            raise ModelFileError(f"{where}: entry {key!r} should be finite (variances >= 0)")
        running[key] = array
    return running
