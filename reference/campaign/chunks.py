"""One chunk of examples on a worker, and the totals of many, the same in any order."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping

import numpy as np

from manual_bp_reference.campaign.config import Config
from manual_bp_reference.campaign.histogram import BINS, KINDS, WORST_KEPT, histogram, kind_of
from manual_bp_reference.campaign.targets import target_function
from manual_bp_reference.draws import DTYPES, Example

# Worker-level state: one per worker process, for its whole life.
WORKER_STATE: dict = {"buckets": set()}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not inside a Dask worker
        return f"local-{socket.gethostname()}-{os.getpid()}"


def _new_bucket(example: Example) -> bool:
    """Whether this worker meets ``example``'s padded-oracle bucket for the first time."""
    from manual_bp_reference.padding import Bucket, worth_padding

    sizes, m = example.arch.sizes, example.arch.m
    bucket = Bucket.for_case(sizes, m) if worth_padding(sizes, m) else (sizes, m, example.arch)
    if bucket in WORKER_STATE["buckets"]:
        return False
    WORKER_STATE["buckets"].add(bucket)
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
