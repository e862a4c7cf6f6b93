"""Verification campaigns: many seeded examples on Dask, resumable, failures shared.

A campaign checks ``examples`` examples of ``reference.draws`` (example ``i``
of seed ``s`` is ``draw_example(s, i)``) against the oracle, the project's
own backward pass by default or a user's function (``target``): on drawn
architectures, ``backprop(params, X, Y, activations, loss)``; or, given a
``network`` (``reference.draws.Network``), on that one network in the
``conventions`` of ``check_gradients``, ``backprop(params, X, Y)`` as
``manual-bp check`` calls it (a student's function).  The
indices are cut into fixed chunks, ``[k * chunk_size, (k + 1) * chunk_size)``;
a chunk's result depends on its indices alone, and the totals are sums (and
a deterministic top-k) over chunks in chunk order, so they are the same for
any number of workers, any machine count and any order of completion.

Per example, every gradient's worst ``|manual - oracle| / tolerance`` (its
*ratio*, see ``reference.compare``) goes into a histogram of ``log10`` ratio
per dtype and key kind (``W``, ``B``, ``Z``, ``A`` and ``loss``); the
example's worst ratio decides whether it fails (``> 1``, or the target
raising).  The worst examples are kept with their ``(seed, index)``: that is
all it takes to rebuild one.

Engine: Dask distributed.  By default a ``LocalCluster`` with one
single-threaded worker process per core (BLAS pinned to one thread with
threadpoolctl, XLA to one thread); ``scheduler="tcp://host:port"`` uses an
existing cluster, workers on any machines that can import this package.  A
worker process keeps jax's compiled padded-oracle buckets
(``reference.padding``) for its life, so each bucket compiles once per
worker; the summary counts them.  A worker that dies mid-chunk loses
nothing: the scheduler runs the chunk again elsewhere, and a chunk is
counted once, when its result arrives.

Resuming: every finished chunk is appended (and flushed) to a manifest,
``<out>.manifest.jsonl`` next to the summary ``<out>.json``; ``resume=True``
reads it and runs only the missing chunks.

Failures are shared through a Hypothesis example database, under the key
Hypothesis itself uses for the property ``campaign_property(target=..., limits=...)``
("every example of every seed passes"), as the choice sequence
``(seed, index)``.  Running that property with the same database (a plain
``pytest`` of a test defined as ``test_x = campaign_property(...)``) replays
the saved failures before it generates anything new.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    MultiplexedDatabase,
    choices_to_bytes,
)
from hypothesis.internal.reflection import function_digest

try:  # the campaign extra; without it only the engine is missing
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object  # type: ignore[assignment,misc]  # without dask: a plain base

from reference.check_run import open_sandbox
from reference.conventions import Conventions
from reference.draws import DEFAULT_LIMITS, DTYPES, Example, Limits, Network, draw_example
from reference.isolation import (
    DEFAULT_TIMEOUT,
    Isolation,
    Sandbox,
    UserCodeError,
    UserCodeLoadError,
    UserCodeStopped,
    UserFunction,
)

# --- the histogram of err/tol -------------------------------------------------------------

KINDS = ("W", "B", "Z", "A", "loss")
# log10(err/tol) bin edges: quarter decades from 1e-12 to 1e2.  Bin 0 holds
# exact agreement (ratio 0), bin 1 everything below 1e-12, the last bin 1e2
# and above (inf: a NaN or an exception).  A ratio of exactly 1 passes but
# falls into the bin that starts at 1.
LOG_EDGES = np.linspace(-12.0, 2.0, 57)
BINS = len(LOG_EDGES) + 2
# Ratios rounded to this many significant digits in the JSON (it is read back).
WORST_KEPT = 10
SEED_BOUND = 2**63


def histogram(ratios: Iterable[float]) -> np.ndarray:
    """Counts of ``ratios`` in the ``BINS`` bins described at ``LOG_EDGES``.

    >>> counts = histogram([0.0, 1e-20, 0.5, 1.0, 3.0, math.inf])
    >>> int(counts[0]), int(counts[1]), int(counts[-1]), int(counts.sum())
    (1, 1, 1, 6)
    """
    values = np.asarray(list(ratios), dtype=np.float64)
    counts = np.zeros(BINS, dtype=np.int64)
    counts[0] = np.sum(values == 0)
    positive = values[values > 0]
    with np.errstate(divide="ignore"):
        logs = np.log10(positive)
    counts[1] = np.sum(logs < LOG_EDGES[0])
    counts[-1] = np.sum(logs >= LOG_EDGES[-1])
    inside = logs[(logs >= LOG_EDGES[0]) & (logs < LOG_EDGES[-1])]
    counts[2:-1] = np.histogram(inside, LOG_EDGES)[0]
    return counts


def kind_of(key: str) -> str:
    """``W3`` -> ``W``, ``A0`` -> ``A``, ``loss`` -> ``loss``."""
    return key if key == "loss" else key.rstrip("0123456789")


# --- one example --------------------------------------------------------------------------

DEFAULT_TARGET = "manual_bp"


@dataclass(frozen=True)
class Outcome:
    """One example's ratios by gradient key (``loss`` too), or the exception it raised."""

    ratios: dict[str, float]
    error: str = ""  # the traceback of an exception
    undecided: int = 0  # entries the check could not decide (``Comparison.undecided``)
    details: str = ""  # what else failed, as check_gradients reports it (extra keys in grads)

    @property
    def worst(self) -> tuple[float, str]:
        if self.error:
            return math.inf, "exception"
        if self.details:
            return math.inf, "grads"
        key = max(self.ratios, key=lambda k: self.ratios[k])
        return self.ratios[key], key

    @property
    def ok(self) -> bool:
        return self.worst[0] <= 1.0


def _check(example: Example, backprop: Callable | None, conventions: Conventions | None):
    """The ``Comparison`` of one example (without the explanation: a campaign only
    counts), whether the loss was compared, and any failure details."""
    from manual_bp.architecture import gradient_keys
    from reference.check import compare_backprop
    from reference.compare import compare
    from reference.kinks import away_from_kinks

    case = example.case
    if backprop is None:
        return compare(case, explain=False), True, []
    # As check_gradients does: code that sums in another order may round a Z
    # near a kink to its other side, where neither answer is wrong.
    case = away_from_kinks(case)
    if conventions is not None:
        comparison, details, _, _ = compare_backprop(
            backprop, case, conventions=conventions, explain=False
        )
        return comparison, False, details
    params = {k: np.array(v) for k, v in case.params.items()}  # writable copies
    grads = dict(backprop(params, np.array(case.X), np.array(case.Y), list(case.activations),
                          case.loss))  # fmt: skip
    keys = [k for k in gradient_keys(len(case.activations), True) if k[0] in "WB" or k in grads]
    return compare(case, grads, keys=keys, explain=False), False, []


def verify(
    example: Example,
    *,
    backprop: Callable | None = None,
    conventions: Conventions | None = None,
) -> Outcome:
    """Compare ``backprop`` (default manual_bp's own) with the oracle on ``example``.

    ``conventions``: call ``backprop(params, X, Y)`` in them, as
    ``check_gradients`` does (else ``backprop(params, X, Y, activations, loss)``).
    """
    try:
        comparison, with_loss, details = _check(example, backprop, conventions)
    except UserCodeError as error:  # the user's frames only
        return Outcome({}, error.record.traceback or error.record.exception)
    except UserCodeStopped as stopped:  # the next call gets a new child
        return Outcome({}, f"{stopped.record.call} {stopped.verdict} ({stopped.detail})\n")
    except Exception:
        return Outcome({}, traceback.format_exc(limit=-3))
    ratios = {key: float(v.ratio) for key, v in comparison.variables.items()}
    if with_loss:
        ratios["loss"] = float(comparison.loss_ratio)
    return Outcome(ratios, undecided=comparison.undecided, details="\n".join(details))


def run_example(
    seed: int,
    index: int,
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Network | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
) -> tuple[Example, Outcome]:
    """Rebuild example ``index`` of seed ``seed`` and check it: how a worst case is
    replayed.  The keywords are those of the campaign (``Config``)."""
    config = Config(1, seed, 1, target, limits, network, conventions, dtypes)
    example = config.draw(index)
    return example, config.verify(example, target_function(config))


def replay(out: Path | str, index: int) -> tuple[Example, Outcome]:
    """Rebuild and recheck example ``index`` of the campaign written at ``out``
    (the ``Config`` in its manifest's first line).  Warns when the target's
    file changed since the campaign began: the recheck is of today's code."""
    files = paths(out)
    if not files["manifest"].exists():
        raise ValueError(f"out: no campaign at {out} (no {files['manifest']})")
    header = json.loads(files["manifest"].read_text().splitlines()[0])
    config = Config.from_dict(header["config"])
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < config.examples:
        raise ValueError(
            f"index: expected an int in 0..{config.examples - 1} (the campaign's examples), "
            f"got {index!r}"
        )
    recorded = header.get("target_digest")
    if recorded is not None and recorded != target_digest(config.target):
        warnings.warn(
            f"{config.target}: the file changed since the campaign ran; this checks its "
            "current code",
            stacklevel=2,
        )
    example = config.draw(index)
    return example, config.verify(example, target_function(config))


# --- the Hypothesis property and its database key -----------------------------------------


def campaign_property(
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Network | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
):
    """The property a campaign samples: every example of every seed passes.

    A Hypothesis test of ``(seed, index)``; ``test_x = campaign_property()``
    in a test module makes it a pytest test.  The keywords are those of the
    campaign (``Config``).  Hypothesis keys its database by the digest of
    the inner test's source, signature and ``_hypothesis_internal_add_digest``
    (the mechanism its pytest plugin uses to tell parametrized tests apart),
    here ``Config.digest``: the target, the limits and any network,
    conventions and dtypes.
    """
    config = Config(1, 0, 1, target, limits, network, conventions, dtypes)
    backprop = target_function(config)

    @given(st.integers(0, SEED_BOUND - 1), st.integers(0, SEED_BOUND - 1))
    def every_example_passes(seed: int, index: int) -> None:
        example = config.draw(index, seed=seed)
        outcome = config.verify(example, backprop)
        ratio, key = outcome.worst
        assert outcome.ok, (
            f"{example.describe()}: worst err/tol {ratio:.3g} in {key}\n"
            f"{outcome.error}{outcome.details}"
        )

    # Hypothesis adds .hypothesis to a @given function at run time.
    inner = every_example_passes.hypothesis.inner_test  # type: ignore[attr-defined]
    inner._hypothesis_internal_add_digest = config.digest.encode()
    return every_example_passes


def database_key(
    *,
    target: str = DEFAULT_TARGET,
    limits: Limits = DEFAULT_LIMITS,
    network: Network | None = None,
    conventions: Conventions | None = None,
    dtypes: tuple[str, ...] = DTYPES,
) -> bytes:
    """The key under which Hypothesis stores the failures of ``campaign_property``.

    ``hypothesis.core`` uses the wrapped test's ``_hypothesis_internal_database_key``
    when it has one (``find`` sets it), else ``function_digest`` of the inner test.
    """
    test = campaign_property(
        target=target, limits=limits, network=network, conventions=conventions, dtypes=dtypes
    )
    key = getattr(test, "_hypothesis_internal_database_key", None)
    return key if key is not None else function_digest(test.hypothesis.inner_test)


def example_database(spec: str | None) -> ExampleDatabase:
    """The database failures go into.

    ``None``: Hypothesis's default local directory ``.hypothesis/examples``;
    ``redis://host:port[/db]``: that Redis server through ``MultiplexedDatabase``
    with the local directory (saves go to both, reads see both); anything
    else: a directory.
    """
    local = DirectoryBasedExampleDatabase(".hypothesis/examples")
    if spec is None:
        return local
    if spec.startswith(("redis://", "rediss://")):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        try:
            client = redis.Redis.from_url(spec)
        except ValueError as error:
            raise ValueError(f"database: not a Redis URL {spec!r}: {error}") from error
        return MultiplexedDatabase(local, RedisExampleDatabase(client))
    return DirectoryBasedExampleDatabase(spec)


def save_failures(database: ExampleDatabase, key: bytes, seed: int, indices: Iterable[int]) -> None:
    """Store each failing ``(seed, index)`` as the choice sequence the property draws."""
    for index in indices:
        database.save(key, choices_to_bytes((seed, int(index))))


# --- one chunk, on a worker ---------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What decides a campaign's totals (a resumed run must match it).

    ``network``: check only that network (``reference.draws.Network``),
    drawing the batch size and values; a user's ``target`` is then called as
    ``check_gradients`` calls it, ``backprop(params, X, Y)`` in
    ``conventions`` (default ``Conventions()``, ours).  ``dtypes``: example
    ``i`` is in ``dtypes[i % len(dtypes)]``.
    """

    examples: int
    seed: int = 0
    chunk_size: int = 500
    target: str = DEFAULT_TARGET
    limits: Limits = DEFAULT_LIMITS
    network: Network | None = None
    conventions: Conventions | None = None
    dtypes: tuple[str, ...] = DTYPES
    # Seconds per call of a user's target (reference.isolation); not in the
    # digest: it changes no verdict of code that returns.
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        Isolation(timeout=self.timeout)  # checks it
        for name in ("examples", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed: expected an int, got {self.seed!r}")
        if not 0 <= self.seed < SEED_BOUND:
            raise ValueError(f"seed: expected 0 <= seed < 2**63, got {self.seed}")
        object.__setattr__(self, "seed", int(self.seed))  # a NumPy int too: JSON takes int
        if not isinstance(self.target, str):
            raise TypeError(
                f"target: expected a str such as 'file.py:backprop', got {self.target!r}"
            )
        where, colon, name = self.target.rpartition(":")
        if colon and where.endswith(".py") and not Path(where).is_absolute():
            # Workers load it again, maybe in another folder: by its absolute path.
            object.__setattr__(self, "target", f"{Path(where).resolve()}:{name}")
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits: expected a reference.draws.Limits, got {self.limits!r}")
        if self.network is not None and not isinstance(self.network, Network):
            raise TypeError(f"network: expected a reference.draws.Network, got {self.network!r}")
        if (
            isinstance(self.dtypes, str)
            or not self.dtypes
            or any(d not in DTYPES for d in self.dtypes)
        ):
            raise ValueError(
                f"dtypes: expected a non-empty list of {list(DTYPES)}, got {self.dtypes!r}"
            )
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        if self.conventions is not None:
            if not isinstance(self.conventions, Conventions):
                raise TypeError(
                    f"conventions: expected a reference.conventions.Conventions, "
                    f"got {self.conventions!r}"
                )
            if self.network is None or self.target == DEFAULT_TARGET:
                raise ValueError(
                    "conventions: a user's target on one network (target and network) takes "
                    f"conventions; got target {self.target!r}, network {self.network!r}"
                )
            self.conventions.check_targets(self.network.loss, self.network.layer_sizes[-1])
            if self.conventions == Conventions():  # ours, given explicitly: the same campaign
                object.__setattr__(self, "conventions", None)

    @property
    def chunks(self) -> int:
        return -(-self.examples // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.examples))

    @property
    def call_conventions(self) -> Conventions | None:
        """The conventions a user's target is called in: ``None`` for the
        five-argument form on drawn architectures (and for manual_bp)."""
        if self.network is None or self.target == DEFAULT_TARGET:
            return None
        return self.conventions or Conventions()

    def draw(self, index: int, *, seed: int | None = None) -> Example:
        """Example ``index`` (of ``seed``, default this campaign's)."""
        conventions = self.call_conventions
        return draw_example(
            self.seed if seed is None else seed, index, limits=self.limits,
            network=self.network, dtypes=self.dtypes,
            hard_targets=conventions is not None and conventions.targets != "soft",
        )  # fmt: skip

    def verify(self, example: Example, backprop: Callable | None) -> Outcome:
        """``verify`` with this campaign's conventions (``backprop`` is the loaded target)."""
        return verify(example, backprop=backprop, conventions=self.call_conventions)

    @property
    def digest(self) -> str:
        """What tells this campaign's property apart in the example database
        (besides the property's source, which Hypothesis hashes too): the target,
        the limits, and any network, conventions and dtypes."""
        text = f"{self.target} {self.limits}"
        if self.network is not None:
            text += f" {self.network} {self.call_conventions}"
        if self.dtypes != DTYPES:
            text += f" {self.dtypes}"
        return text

    def as_dict(self) -> dict:
        return {
            "examples": self.examples,
            "seed": self.seed,
            "chunk_size": self.chunk_size,
            "target": self.target,
            "limits": dataclasses.asdict(self.limits),
            "network": None if self.network is None else dataclasses.asdict(self.network),
            "conventions": None if self.conventions is None else self.conventions.as_dict(),
            "dtypes": list(self.dtypes),
            "timeout": self.timeout,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Config:
        """The inverse of ``as_dict`` (a manifest of an earlier version lacks the
        network, conventions and dtypes: those were the defaults)."""
        network, conventions = data.get("network"), data.get("conventions")
        return cls(
            data["examples"], data["seed"], data["chunk_size"], data["target"],
            Limits(**data["limits"]),
            None if network is None else Network(**network),
            None if conventions is None else Conventions(**conventions),
            tuple(data.get("dtypes", DTYPES)),
            data.get("timeout", DEFAULT_TIMEOUT),
        )  # fmt: skip


# Worker-level state: one per worker process, for its whole life.
_WORKER_STATE: dict = {"buckets": set()}
# A user's target runs in a child process (reference.isolation), one per
# thread (a Dask worker may run chunks in several), target, state of its file
# (an edited file is loaded again) and timeout.
_SANDBOXES: dict[tuple, Sandbox] = {}
_SANDBOXES_LOCK = threading.Lock()


def target_function(config: Config) -> UserFunction | None:
    """``None`` for the project's own backprop; else the campaign's target as a
    ``reference.isolation.UserFunction``, run in a child process that this
    process keeps: a call that hangs past ``config.timeout``, exits or crashes
    fails its example, never the worker.  A target that cannot be loaded is a
    ``ValueError`` naming ``target``.

    ``config.target`` is ``manual_bp``, ``module:function`` or
    ``path/to/file.py:function`` (``reference.user_functions``).  Without a
    ``network`` a user's function is called as ``backprop(params, X, Y,
    activations, loss)`` and returns ``grads`` holding ``W1..WL`` and
    ``B1..BL`` and any of ``Zl``, ``Al`` (compared when present), in our
    conventions; it computes in the dtype of ``params``.  With a ``network``
    it is called as ``check_gradients`` calls it, ``backprop(params, X, Y)``
    in the given ``conventions``.
    """
    if config.target == DEFAULT_TARGET:
        return None
    thread = threading.get_ident()
    key = (config.target, _file_state(config.target), config.timeout, thread)
    with _SANDBOXES_LOCK:
        sandbox = _SANDBOXES.get(key)
        stale = [k for k in _SANDBOXES if k[0] == config.target and k[3] == thread and k != key]
        for old in stale:  # this thread's child of an older file: no call of it is running
            _SANDBOXES.pop(old).close()
    if sandbox is None:
        try:
            sandbox = open_sandbox({"target": config.target}, Isolation(timeout=config.timeout))
        except UserCodeLoadError as error:  # one line: where the user's code failed
            where = [line.strip() for line in error.traceback.splitlines() if "File " in line]
            at = f" ({where[-1]})" if where else ""
            raise ValueError(f"target: {error.problem}{at}") from None
        except UserCodeStopped as stopped:
            raise ValueError(
                f"target: loading {config.target} {stopped.verdict} ({stopped.detail})"
            ) from None
        with _SANDBOXES_LOCK:
            _SANDBOXES[key] = sandbox
    names = ("params", "X", "Y") if config.network else ("params", "X", "Y", "activations", "loss")
    return sandbox.function("target", names)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not inside a Dask worker
        return f"local-{socket.gethostname()}-{os.getpid()}"


def _new_bucket(example: Example) -> bool:
    """Whether this worker meets ``example``'s padded-oracle bucket for the first time."""
    from reference.padding import Bucket, worth_padding

    sizes, m = example.arch.sizes, example.arch.m
    bucket = Bucket.for_case(sizes, m) if worth_padding(sizes, m) else (sizes, m, example.arch)
    if bucket in _WORKER_STATE["buckets"]:
        return False
    _WORKER_STATE["buckets"].add(bucket)
    return True


def _worst_entry(example: Example, ratio: float, key: str) -> dict:
    return {
        "ratio": ratio,
        "index": example.index,
        "key": key,
        "dtype": example.dtype,
        "network": example.arch.describe(),
    }


def _rank(entry: Mapping) -> tuple[float, int]:
    """Worst first; equal ratios by index, so the top-k does not depend on the order seen."""
    return (-entry["ratio"], entry["index"])


def _file_state(target: str) -> tuple[int, int] | None:
    """A file target's modification time and size (``None`` for a module's)."""
    where = target.rpartition(":")[0]
    if not where.endswith(".py"):
        return None
    try:
        stat = os.stat(where)
    except OSError:
        return None  # loading names the missing file
    return stat.st_mtime_ns, stat.st_size


def run_chunk(config: Config, chunk: int) -> dict:
    """Check the examples of ``chunk``; a JSON-ready dict (see ``merge``)."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    target = target_function(config)
    ratios: dict[str, dict[str, list[float]]] = {d: {k: [] for k in KINDS} for d in DTYPES}
    examples = dict.fromkeys(DTYPES, 0)
    undecided = dict.fromkeys(DTYPES, 0)
    failures: list[int] = []
    errors: list[str] = []
    worst: list[dict] = []
    buckets = 0
    for index in config.chunk_range(chunk):
        example = config.draw(index)
        buckets += _new_bucket(example)
        outcome = config.verify(example, target)
        examples[example.dtype] += 1
        undecided[example.dtype] += outcome.undecided > 0
        for key, ratio in outcome.ratios.items():
            ratios[example.dtype][kind_of(key)].append(ratio)
        ratio, key = outcome.worst
        if not outcome.ok:
            failures.append(index)
            if outcome.error or outcome.details:
                message = (outcome.error or outcome.details).strip().splitlines()[-1]
                errors.append(f"example {index}: {message}")
        worst.append(_worst_entry(example, ratio, key))
        worst = sorted(worst, key=_rank)[:WORST_KEPT]
    return {
        "chunk": chunk,
        "examples": examples,
        "undecided": undecided,
        "failures": failures,
        "errors": errors[:WORST_KEPT],
        "histogram": {
            d: {k: histogram(r).tolist() for k, r in kinds.items()} for d, kinds in ratios.items()
        },
        "worst": worst,
        "worker": _worker_name(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "new_buckets": buckets,
        "seconds": time.perf_counter() - start_wall,
        "cpu_seconds": time.process_time() - start_cpu,
    }


# --- totals -------------------------------------------------------------------------------


def merge(chunks: Iterable[Mapping]) -> dict:
    """The totals over chunk results: sums and a top-k, the same in any order.

    Nothing here depends on which worker ran a chunk or when.
    """
    chunks = sorted(chunks, key=lambda c: c["chunk"])
    examples = dict.fromkeys(DTYPES, 0)
    undecided = dict.fromkeys(DTYPES, 0)
    counts = {d: {k: np.zeros(BINS, np.int64) for k in KINDS} for d in DTYPES}
    failures: list[int] = []
    errors: list[str] = []
    worst: list[dict] = []
    for chunk in chunks:
        for dtype in DTYPES:
            examples[dtype] += chunk["examples"][dtype]
            undecided[dtype] += chunk.get("undecided", {}).get(dtype, 0)
            for kind in KINDS:
                counts[dtype][kind] += np.asarray(chunk["histogram"][dtype][kind], np.int64)
        failures += chunk["failures"]
        errors += chunk["errors"]
        worst = sorted(worst + list(chunk["worst"]), key=_rank)[:WORST_KEPT]
    return {
        "examples": sum(examples.values()),
        "examples_by_dtype": examples,
        # Examples with an entry the tolerance could not decide (they pass).
        "undecided_by_dtype": undecided,
        "failures": len(failures),
        "failing_indices": sorted(failures)[:100],
        "errors": errors[:WORST_KEPT],
        "chunks": len(chunks),
        "worst": worst,
        "histogram": {d: {k: c.tolist() for k, c in kinds.items()} for d, kinds in counts.items()},
    }


def throughput(chunks: Iterable[Mapping], wall: float) -> dict:
    """Examples per second per worker (busy time) and over the session's wall time."""
    workers: dict[str, dict] = {}
    total = 0
    for chunk in chunks:
        n = sum(chunk["examples"].values())
        total += n
        entry = workers.setdefault(
            chunk["worker"],
            {"host": chunk["host"], "examples": 0, "chunks": 0, "seconds": 0.0, "buckets": 0},
        )
        entry["examples"] += n
        entry["chunks"] += 1
        entry["seconds"] += chunk["seconds"]
        entry["buckets"] += chunk["new_buckets"]
    for entry in workers.values():
        entry["examples_per_second"] = entry["examples"] / max(entry["seconds"], 1e-9)
    return {
        "wall_seconds": wall,
        "examples": total,
        "examples_per_second": total / max(wall, 1e-9),
        "workers": workers,
    }


# --- the manifest -------------------------------------------------------------------------

# How examples are judged; a resumed campaign must be judged as it began.  Version 2
# keeps a user's target's kinked units off the kink (manual_bp's target is unchanged).
RULES = 2


def paths(out: Path | str) -> dict[str, Path]:
    """``<out>.json`` (summary), ``<out>.png`` (plot), ``<out>.manifest.jsonl`` (chunks)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".json" else out
    return {
        "summary": stem.with_name(stem.name + ".json"),
        "plot": stem.with_name(stem.name + ".png"),
        "manifest": stem.with_name(stem.name + ".manifest.jsonl"),
    }


def target_digest(target: str) -> str | None:
    """The SHA-256 of a file target's source (``None`` for a module or manual_bp)."""
    where = target.rpartition(":")[0]
    if not where.endswith(".py") or not os.path.isfile(where):
        return None
    return hashlib.sha256(Path(where).read_bytes()).hexdigest()


def read_manifest(path: Path, config: Config) -> dict[int, dict]:
    """The chunks a previous run of ``config`` completed, by chunk number."""
    lines = path.read_text().splitlines()
    if not lines:
        return {}
    header = json.loads(lines[0])
    if Config.from_dict(header["config"]) != config:
        ours = config.as_dict()
        theirs = Config.from_dict(header["config"]).as_dict()
        differ = "; ".join(
            f"{name} {theirs[name]!r} there, {ours[name]!r} here"
            for name in ours
            if ours[name] != theirs[name]
        )
        raise ValueError(f"resume: {path} is another campaign: {differ}")
    recorded = header.get("target_digest")
    if recorded is not None and recorded != target_digest(config.target):
        raise ValueError(
            f"resume: the target file of {config.target!r} changed since the campaign "
            "began; its chunks judged the old code: start a new campaign"
        )
    if header.get("rules", 1) != RULES and config.target != DEFAULT_TARGET:
        raise ValueError(
            f"resume: {path} was checked by the rules of version {header.get('rules', 1)}; "
            f"a user's target is now checked by version {RULES} (kinked units kept off the "
            "kink), and one total cannot mix them: start a new campaign"
        )
    done = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            chunk = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut short by a crash: run that chunk again
                break
            raise ValueError(f"resume: {path} line {number} is not JSON") from None
        done[chunk["chunk"]] = chunk
    return done


# --- the Dask engine ----------------------------------------------------------------------


def pin_threads() -> None:
    """One thread for BLAS (threadpoolctl) and XLA in this process: a worker per core.

    XLA reads its flags when jax creates its CPU client, so they take effect
    when this runs before the worker's first oracle call.
    """
    from threadpoolctl import threadpool_limits

    _WORKER_STATE["threadpool_limits"] = threadpool_limits(1)
    if "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


class PinThreads(WorkerPlugin):
    """A worker plugin: ``pin_threads`` in every worker process."""

    def setup(self, worker) -> None:
        pin_threads()


@contextlib.contextmanager
def dask_client(*, scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A ``distributed.Client``: of ``scheduler``, or of a new ``LocalCluster``.

    The local cluster has ``workers`` (default ``os.cpu_count()``) worker
    processes of one thread each.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None and workers is not None:
        raise ValueError("workers: give either workers (a local cluster) or scheduler, not both")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers: expected a positive int, got {workers!r}")
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: never a clash
                    silence_logs=40,
                )
            )
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout=30))
            except OSError as error:
                raise ValueError(f"scheduler: cannot connect to {scheduler!r}: {error}") from error
        # Runs on every worker now and on any that joins later (a restarted one).
        client.register_plugin(PinThreads(), name="manual-bp-pin-threads")
        yield client


def run_campaign(
    config: Config,
    out: Path | str,
    *,
    client=None,
    scheduler: str | None = None,
    workers: int | None = None,
    database: ExampleDatabase | None = None,
    resume: bool = False,
    progress: bool | None = None,
    plot: bool = True,
    report_only: bool = False,
) -> dict:
    """Run (or resume) a campaign; write its summary, plot and manifest; return the summary.

    ``client`` is a ``distributed.Client`` to use; else ``scheduler`` or a
    local cluster of ``workers`` (see ``dask_client``).  Failures are saved
    to ``database`` (``None``: do not save).  ``progress``: a tqdm bar,
    ``None`` shows it on a terminal only.  ``report_only``: run nothing, write
    the summary and plot of the chunks the manifest holds (``complete`` says
    whether that is all of them).
    """
    files = paths(out)
    manifest = files["manifest"]
    if report_only and not manifest.exists():
        raise ValueError(f"report_only: no manifest {manifest} to report on")
    resume = resume or report_only
    if manifest.exists() and not resume:
        raise ValueError(
            f"out: {manifest} exists (a campaign was run there); pass resume to continue it "
            "or remove the file"
        )
    if resume and not manifest.exists():
        raise ValueError(
            f"resume: no campaign at {manifest} to continue (drop resume to start one)"
        )
    done = read_manifest(manifest, config) if resume else {}
    key = database_key(
        target=config.target, limits=config.limits, network=config.network,
        conventions=config.conventions, dtypes=config.dtypes,
    )  # fmt: skip
    manifest.parent.mkdir(parents=True, exist_ok=True)
    if not manifest.exists() or not manifest.read_text().strip():
        header = {"config": config.as_dict(), "rules": RULES}
        if target_digest(config.target) is not None:
            header["target_digest"] = target_digest(config.target)
        manifest.write_text(json.dumps(header) + "\n")
    todo = [] if report_only else [c for c in range(config.chunks) if c not in done]
    start = time.perf_counter()
    session: list[dict] = []
    with contextlib.ExitStack() as stack:
        if todo and client is None:
            client = stack.enter_context(dask_client(scheduler=scheduler, workers=workers))
        from tqdm import tqdm

        bar = stack.enter_context(
            tqdm(
                total=config.examples,
                initial=sum(sum(c["examples"].values()) for c in done.values()),
                unit="example",
                disable=None if progress is None else not progress,
                smoothing=0.05,
            )
        )
        log = stack.enter_context(manifest.open("a"))
        if todo:
            from distributed import as_completed

            token = uuid.uuid4().hex[:12]  # fresh task keys: nothing stale is reused
            futures = [
                client.submit(run_chunk, config, chunk, key=f"campaign-{token}-{chunk}", pure=False)
                for chunk in todo
            ]
            for future in as_completed(futures):
                result = future.result()
                log.write(json.dumps(result) + "\n")
                log.flush()
                os.fsync(log.fileno())
                if database is not None:
                    save_failures(database, key, config.seed, result["failures"])
                done[result["chunk"]] = result
                session.append(result)
                bar.update(sum(result["examples"].values()))
                bar.set_postfix(failures=sum(len(c["failures"]) for c in done.values()))
    wall = time.perf_counter() - start
    summary = {
        "config": config.as_dict(),
        "database_key": key.hex(),
        "complete": len(done) == config.chunks,
        "totals": merge(done.values()),
        # A report on a manifest: every chunk's worker and busy time, no wall time.
        "throughput": throughput(list(done.values()), math.nan)
        if report_only
        else throughput(session, wall),
        "files": {name: str(path) for name, path in files.items()},
    }
    files["summary"].write_text(json.dumps(summary, indent=1) + "\n")
    if plot:
        plot_histogram(files["plot"], summary)
    return summary


# --- the plot -----------------------------------------------------------------------------


def plot_histogram(path: Path, summary: Mapping) -> Path:
    """Step histograms of log10(err/tol), one panel per dtype, one line per key kind."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    # Mathtext's tick labels ask for fonts this machine may lack; the fallback is fine.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    import matplotlib.pyplot as plt

    totals = summary["totals"]
    figure, axes = plt.subplots(1, len(DTYPES), figsize=(11, 4.2), sharey=True)
    centres = (LOG_EDGES[:-1] + LOG_EDGES[1:]) / 2
    step = LOG_EDGES[1] - LOG_EDGES[0]
    # The underflow and overflow bins are drawn one step beyond each end.
    xs = np.concatenate([[LOG_EDGES[0] - step], centres, [LOG_EDGES[-1] + step / 2]])
    for axis, dtype in zip(axes, DTYPES, strict=True):
        for kind in KINDS:
            counts = np.asarray(totals["histogram"][dtype][kind])
            if counts.sum() == 0:
                continue
            ys = np.where(counts[1:] > 0, counts[1:], np.nan)
            label = f"{kind} ({counts[0]} exact)" if counts[0] else kind
            axis.step(xs, ys, where="mid", label=label)
        axis.axvline(0.0, color="black", linestyle="--", linewidth=1)
        axis.text(-0.1, 0.97, "tolerance", transform=axis.get_xaxis_transform(), va="top",
                  ha="right")  # fmt: skip
        axis.set_xlim(LOG_EDGES[0] - 2 * step, LOG_EDGES[-1] + step)
        axis.set_xticks([*range(-12, 3, 2)])
        axis.set_yscale("log")
        axis.set_xlabel(
            "log10(|manual - oracle| / tolerance) per gradient\n"
            "(the left- and rightmost steps: below 1e-12, at least 1e2)"
        )
        n = totals["examples_by_dtype"][dtype]
        axis.set_title(f"{dtype}: {n} examples")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(title="key kind", fontsize=8, loc="upper left")
        else:  # a campaign of one dtype
            axis.text(0.5, 0.5, f"no {dtype} examples", transform=axis.transAxes, ha="center")
    axes[0].set_ylabel("gradients")
    # Headroom above the highest step for the legends.
    highest = max(
        max(np.max(c[1:]) for c in kinds.values()) for kinds in totals["histogram"].values()
    )
    axes[0].set_ylim(0.5, max(highest, 1) * 3e3)
    config = summary["config"]
    target = Path(config["target"]).name  # a file's name without its folders
    network = config.get("network")
    on = f" on {list(network['layer_sizes'])}" if network else ""
    figure.suptitle(
        f"campaign seed {config['seed']}, target {target}{on}: "
        f"{totals['examples']} examples, {totals['failures']} failing"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
