"""Verification campaigns: many seeded examples on Dask, resumable, failures shared.

A campaign checks ``examples`` examples of ``manual_bp_reference.draws`` (example ``i``
of seed ``s`` is ``draw_example(s, i)``) against the oracle, the project's
own backward pass by default or a user's function (``target``): on drawn
architectures, ``backprop(params, X, Y, activations, loss)``; or, given a
``network`` (a plain ``manual_bp.Net``), on that one network in the
``conventions`` of ``check_gradients``, ``backprop(params, X, Y)`` as
``manual-bp check`` calls it (a student's function).  The
indices are cut into fixed chunks, ``[k * chunk_size, (k + 1) * chunk_size)``;
a chunk's result depends on its indices alone, and the totals are sums (and
a deterministic top-k) over chunks in chunk order, so they are the same for
any number of workers, any machine count and any order of completion.

Per example, every gradient's worst ``|manual - oracle| / tolerance`` (its
*ratio*, see ``manual_bp_reference.compare``) goes into a histogram of ``log10`` ratio
per dtype and key kind (``W``, ``B``, ``Z``, ``A`` and ``loss``); the
example's worst ratio decides whether it fails (``> 1``, or the target
raising).  The worst examples are kept with their ``(seed, index)``: that is
all it takes to rebuild one.

Engine: Dask distributed.  By default a ``LocalCluster`` with one
single-threaded worker process per core (BLAS pinned to one thread with
threadpoolctl, XLA to one thread); ``scheduler="tcp://host:port"`` uses an
existing cluster, workers on any machines that can import this package.  A
worker process keeps jax's compiled padded-oracle buckets
(``manual_bp_reference.padding``) for its life, so each bucket compiles once per
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

The package, by concern: ``config`` (``Config``), ``outcome`` (one example's
verification), ``targets`` (a user's target in a child process), ``chunks``
(a chunk on a worker, the totals), ``manifest`` (resuming), ``database``
(the property and its failures), ``engine`` (Dask, ``run_campaign``),
``replay``, ``histogram``, ``plot``.
"""

from manual_bp_reference.campaign.chunks import merge, run_chunk, throughput
from manual_bp_reference.campaign.config import DEFAULT_TARGET, SEED_BOUND, Config
from manual_bp_reference.campaign.database import (
    campaign_property,
    database_key,
    example_database,
    save_failures,
)
from manual_bp_reference.campaign.engine import PinThreads, dask_client, pin_threads, run_campaign
from manual_bp_reference.campaign.histogram import (
    BINS,
    KINDS,
    LOG_EDGES,
    WORST_KEPT,
    histogram,
    kind_of,
)
from manual_bp_reference.campaign.manifest import RULES, paths, read_manifest, target_digest
from manual_bp_reference.campaign.outcome import Outcome, verify
from manual_bp_reference.campaign.plot import plot_histogram
from manual_bp_reference.campaign.replay import replay, run_example
from manual_bp_reference.campaign.targets import target_function

__all__ = [
    "BINS", "DEFAULT_TARGET", "KINDS", "LOG_EDGES", "RULES", "SEED_BOUND", "WORST_KEPT",
    "Config", "Outcome", "PinThreads", "campaign_property", "dask_client", "database_key",
    "example_database", "histogram", "kind_of", "merge", "paths", "pin_threads",
    "plot_histogram", "read_manifest", "replay", "run_campaign", "run_chunk", "run_example",
    "save_failures", "target_digest", "target_function", "throughput", "verify",
]  # fmt: skip
