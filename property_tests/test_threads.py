"""The BLAS thread policy (manual_bp/threads.py): which counts it applies, and
that the user's own settings win.  No timing: a stand-in library records every
``set_num_threads`` call of a forward and backward pass."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from manual_bp import Net, network, threads


class RecordingLibrary:
    """A BLAS controller that records what it is asked."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.calls: list[int] = []
        self.asked = 0

    def get_num_threads(self) -> int:
        self.asked += 1
        return self.threads

    def set_num_threads(self, num_threads: int) -> None:
        self.calls.append(num_threads)
        self.threads = num_threads


@pytest.fixture
def policy(monkeypatch):
    """A fresh policy on a 2-core machine with nothing else running, the
    environment cleared of every variable the policy reads."""
    for name in threads.USER_VARIABLES + threads.WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    state = threads._State()
    state.cores, state.searched = 2, True
    state.library = RecordingLibrary(2)
    others = {"running": 0}
    monkeypatch.setattr(state, "others_running", lambda: others["running"])
    monkeypatch.setattr(threads, "_STATE", state)
    return state, others


def net(sizes: list[int], m: int, dtype: str = "float64"):
    rng = np.random.default_rng(0)
    activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
    params = network.init_params(sizes, activations, seed=0, dtype=dtype)
    X = rng.standard_normal((sizes[0], m)).astype(dtype)
    Y = np.zeros((sizes[-1], m), dtype)
    Y[rng.integers(0, sizes[-1], m), np.arange(m)] = 1
    return params, X, Y, activations


def one_step(sizes: list[int], m: int, dtype: str = "float64") -> dict[str, np.ndarray]:
    params, X, Y, activations = net(sizes, m, dtype)
    spec = Net.of(sizes, activations, "cross_entropy")
    _, cache = network.forward(params, X, spec)
    return network.backward(cache, Y, spec)


MEDIUM = ([64, 128, 128, 10], 256)  # every product between the two thresholds
# W1 X is 512 * 512 * 256 = 2^26 multiply-adds, the float64 crossover exactly.
LARGE = ([512, 512, 2], 256)


def test_the_counts_follow_the_crossover():
    crossover = threads.MULTI_THREAD_WORK[8]
    assert threads.gemm_threads(crossover - 1, 8, 2) == 1
    assert threads.gemm_threads(crossover, 8, 2) == 2
    assert threads.gemm_threads(crossover, 4, 2) == 1  # float32 crosses over later
    assert threads.gemm_threads(threads.MULTI_THREAD_WORK[4], 4, 2) == 2
    assert threads.gemm_threads(10 * crossover, 8, 1) == 1


def test_small_passes_never_ask_the_library(policy):
    state, _ = policy
    one_step([2, 16, 16, 2], 64)
    assert state.library.calls == [] and state.library.asked == 0


def test_medium_products_run_on_one_thread_and_the_count_is_restored(policy):
    state, _ = policy
    one_step(*MEDIUM)
    # Forward and backward: lowered once at the first product, restored at the end.
    assert state.library.calls == [1, 2, 1, 2]
    assert state.library.threads == 2


def test_large_products_use_the_free_cores_only(policy):
    state, others = policy
    one_step(*LARGE)
    assert state.library.calls == [], "2^26 multiply-adds on a quiet machine: both cores"
    others["running"] = 1  # another process keeps one core busy
    one_step(*LARGE)
    assert state.library.calls == [1, 2, 1, 2]


def test_float32_crosses_over_later(policy):
    state, _ = policy
    one_step(*LARGE, dtype="float32")
    assert state.library.calls == [1, 2, 1, 2]


@pytest.mark.parametrize("variable", threads.USER_VARIABLES)
def test_a_thread_variable_leaves_the_user_in_charge(policy, monkeypatch, variable):
    state, _ = policy
    monkeypatch.setenv(variable, "2")
    one_step(*MEDIUM)
    assert state.library.calls == []
    assert threads.status().mode == "user" and variable in threads.status().reason


def test_a_threadpool_limits_context_leaves_the_user_in_charge(policy):
    state, _ = policy
    state.library.threads = 1  # as threadpool_limits(1) leaves it
    one_step(*LARGE)
    assert state.library.calls == []
    assert threads.status().mode == "user"


def test_xdist_workers_run_every_product_on_one_thread(policy, monkeypatch):
    state, _ = policy
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    one_step(*LARGE)
    assert state.library.calls == [1, 2, 1, 2]
    assert threads.status().mode == "worker"


def test_the_policy_can_be_turned_off(policy):
    state, _ = policy
    previous = threads.set_policy(False)
    try:
        one_step(*MEDIUM)
        assert state.library.calls == [] and threads.status().mode == "off"
    finally:
        threads.set_policy(previous)
    with pytest.raises(TypeError, match="enabled"):
        threads.set_policy("no")


def test_the_count_is_restored_when_a_pass_raises(policy):
    state, _ = policy
    params, X, Y, activations = net(*MEDIUM)
    spec = Net.of(MEDIUM[0], activations, "cross_entropy")
    _, cache = network.forward(params, X, spec)
    broken = {key: value for key, value in cache.items() if key != "A1"}  # layer 2 reads A1
    state.library.calls.clear()
    with pytest.raises(KeyError):
        network.backward(broken, Y, spec)
    assert state.library.threads == 2


def test_the_loaded_machine_count_excludes_our_own_spinning_threads(monkeypatch):
    state = threads._State()
    state.cores = 2
    fd = {"value": b"0.50 0.40 0.30 2/100 123\n"}
    monkeypatch.setattr(threads.os, "pread", lambda *_: fd["value"])
    state._loadavg = 99  # any open descriptor; pread is the stand-in
    assert state.others_running() == 1  # this thread and one other
    state.last_multi_thread = threads.time.monotonic()
    assert state.others_running() == 0  # the other one is our own BLAS thread, spinning


def test_the_real_library_keeps_a_users_limit_and_gets_its_count_back():
    """With the BLAS numpy really uses: inside threadpool_limits(1) the count
    stays 1 through a pass, and after a pass it is what it was before."""
    if not any(pool["user_api"] == "blas" for pool in threadpool_info()):
        pytest.skip("threadpoolctl finds no BLAS")
    before = blas_threads()
    one_step(*MEDIUM)
    assert blas_threads() == before
    with threadpool_limits(1, user_api="blas"):
        one_step(*LARGE)
        assert blas_threads() == 1
        if threads.usable_cores() > 1:
            assert threads.status().mode in {"user", "worker"}


def blas_threads() -> int:
    return next(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_gradients_do_not_depend_on_the_policy():
    on = one_step(*LARGE)
    previous = threads.set_policy(False)
    try:
        off = one_step(*LARGE)
    finally:
        threads.set_policy(previous)
    for key in on:
        np.testing.assert_array_equal(on[key], off[key], err_msg=key)


def test_pin_blas_threads_pins_the_whole_process():
    code = (
        "from threadpoolctl import threadpool_info\n"
        "from manual_bp import threads\n"
        "threads.pin_blas_threads()\n"
        "print(threads.status().mode, {p['num_threads'] for p in threadpool_info()})\n"
    )
    env = {"PATH": "", "PYTHONPATH": ":".join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.split() == ["worker", "{1}"]
    with pytest.raises(ValueError, match="threads"):
        threads.pin_blas_threads(0)
