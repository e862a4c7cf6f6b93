"""The Dask engine: a cluster, its workers' threads pinned, and ``run_campaign``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis.database import (
    ExampleDatabase,
)

try:  # the campaign extra; without it only the engine is missing
    from distributed import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object  # type: ignore[assignment,misc]  # without dask: a plain base

from manual_bp_reference.campaign.chunks import WORKER_STATE, merge, run_chunk, throughput
from manual_bp_reference.campaign.config import Config
from manual_bp_reference.campaign.database import database_key, save_failures
from manual_bp_reference.campaign.manifest import RULES, paths, read_manifest, target_digest
from manual_bp_reference.campaign.plot import plot_histogram


def pin_threads() -> None:
    """One thread for BLAS (threadpoolctl) and XLA in this process: a worker per core.

    XLA reads its flags when jax creates its CPU client, so they take effect
    when this runs before the worker's first oracle call.
    """
    from threadpoolctl import threadpool_limits

    WORKER_STATE["threadpool_limits"] = threadpool_limits(1)
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


def _cluster(cluster: object) -> tuple[Any, dict]:
    """``run_campaign``'s ``cluster`` as ``(client, dask_client keywords)``."""
    if cluster is None:
        return None, {}
    if isinstance(cluster, str):
        return None, {"scheduler": cluster}
    if isinstance(cluster, int) and not isinstance(cluster, bool):
        if cluster < 1:
            raise ValueError(f"cluster: expected at least 1 local worker, got {cluster}")
        return None, {"workers": cluster}
    distributed = sys.modules.get("distributed")  # a Client means it is imported
    if distributed is not None and isinstance(cluster, distributed.Client):
        return cluster, {}
    raise TypeError(
        "cluster: expected a distributed.Client, a scheduler address such as "
        f"'tcp://host:8786', a number of local workers or None, got {type(cluster).__name__} "
        f"{cluster!r}"
    )


def run_campaign(
    config: Config,
    out: Path | str,
    *,
    cluster: object = None,
    database: ExampleDatabase | None = None,
    resume: bool = False,
    progress: bool | None = None,
    plot: bool = True,
    report_only: bool = False,
) -> dict:
    """Run (or resume) a campaign; write its summary, plot and manifest; return the summary.

    ``cluster`` says where the chunks run: a ``distributed.Client`` to use,
    a scheduler's address (``"tcp://host:8786"``), a number of local
    workers, or ``None``: a local cluster of ``os.cpu_count()`` workers (see
    ``dask_client``).  Failures are saved
    to ``database`` (``None``: do not save).  ``progress``: a tqdm bar,
    ``None`` shows it on a terminal only.  ``report_only``: run nothing, write
    the summary and plot of the chunks the manifest holds (``complete`` says
    whether that is all of them).
    """
    client, where = _cluster(cluster)
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
            client = stack.enter_context(dask_client(**where))
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
