"""A user's code is untrusted input: whatever it does, the check ends in time
with a verdict, its JSON parses and the checker's arrays stay the checker's.

Each hostile function below is run through the Python API (``check_gradients``,
``check_layer``, ``check_optimizer``) and through ``manual-bp check`` with and
without ``--json``.  The CLI runs in this process (``main``) but for the
subprocess runs, which show that nothing the child does reaches the parent's
stdout, not even ``os.write(1, ...)``.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from manual_bp.cli import main
from manual_bp.optimizers import SGD, Adam
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.layer_check import LayerMismatch, check_layer
from manual_bp_reference.optimizer_check import OptimizerMismatch, check_optimizer
from manual_bp_reference.settings import Settings

ARCH = ([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
FLAGS = ["--layers", "2,3,1", "--activations", "tanh,sigmoid", "--examples", "10"]
TIMEOUT = 1.0  # seconds per call: the hanging cases end after about this
# How long a check may take beyond its time limit: starting the child and jax,
# a first compilation, a slow shared machine (measured: 2-5 s for these checks).
SLACK = 60.0

HOSTILE = """
import os, sys, time
import numpy as np

def correct(params, X, Y):
    m = X.shape[1]
    A1 = np.tanh(params["W1"] @ X + params["B1"])
    A2 = 1 / (1 + np.exp(-(params["W2"] @ A1 + params["B2"])))
    dZ2 = (A2 - Y) / m
    dZ1 = (params["W2"].T @ dZ2) * (1 - A1 ** 2)
    return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
            "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}

def exits_0(params, X, Y):
    sys.exit(0)

def exits_1(params, X, Y):
    sys.exit(1)

def ends_the_process(params, X, Y):
    os._exit(0)

def spins(params, X, Y):
    while True:
        pass

def sleeps(params, X, Y):
    time.sleep(10 ** 6)

def prints_a_lot(params, X, Y):
    for i in range(200_000):
        print("debug line", i)
    os.write(1, b"and a native write\\n")
    return correct(params, X, Y)

def writes_in_place(params, X, Y):
    grads = correct(params, X, Y)
    params["W1"] -= 0.1 * grads["W1"]   # a training step, in place
    X *= 2.0
    Y[...] = 0.5
    return grads

def raises_or_is_wrong(params, X, Y):
    if X.shape[1] == 1:
        raise IndexError("one sample breaks me")
    grads = correct(params, X, Y)
    grads["W2"] = -grads["W2"]
    return grads

def returns_none(params, X, Y):
    correct(params, X, Y)

def returns_a_pair(params, X, Y):  # two dicts: no (loss, grads) pair
    return correct(params, X, Y), correct(params, X, Y)

def interrupts(params, X, Y):
    raise KeyboardInterrupt

def crashes(params, X, Y):
    import ctypes
    ctypes.string_at(0)

def allocates(params, X, Y):
    return {"W1": np.ones((1 << 40,))}

def prints_then_spins(params, X, Y):
    print("epoch 1 starting")
    while True:
        pass

def mixes_its_output(params, X, Y):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    os.write(1, b"raw\\n")
    return correct(params, X, Y)

def starts_a_grandchild(params, X, Y):
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.environ["GRANDCHILD_PID_FILE"], "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
"""

# name: (verdict, a phrase of the report)
CASES = {
    "exits_0": ("raised", "SystemExit"),
    "exits_1": ("raised", "SystemExit"),
    "ends_the_process": ("ended the process", "exit status 0"),
    "spins": ("timed out", f"timed out after {TIMEOUT:g} s on this case"),
    "sleeps": ("timed out", f"after {TIMEOUT:g} s"),
    "raises_or_is_wrong": ("wrong", "raised: IndexError: one sample breaks me"),
    "returns_none": ("wrong", "backprop returned None; expected a dict of gradients"),
    "returns_a_pair": ("wrong", "backprop returned a tuple of 2 (dict, dict)"),
    "interrupts": ("raised", "KeyboardInterrupt"),
    "crashes": ("ended the process", "killed by signal SIGSEGV"),
    "allocates": ("raised", "MemoryError"),
    "prints_then_spins": ("timed out", "epoch 1 starting"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    path = tmp_path_factory.mktemp("student") / "hostile.py"
    path.write_text(HOSTILE)
    return path


def _api(spec):
    return check_gradients(
        spec, *ARCH, settings=Settings(max_examples=10, timeout=TIMEOUT, memory_limit=2**30)
    )


@pytest.mark.parametrize("name", list(CASES))
def test_the_api_gives_each_hostile_function_its_verdict_in_time(hostile, name):
    verdict, phrase = CASES[name]
    start = time.perf_counter()
    with pytest.raises(GradientMismatch) as caught:
        _api(f"{hostile}:{name}")
    assert time.perf_counter() - start < TIMEOUT + SLACK
    mismatch = caught.value
    assert mismatch.verdict == verdict, str(mismatch)
    assert phrase in str(mismatch)
    assert "seed 0" in str(mismatch)


# The JSON variants, and the hanging cases (each waits out its timeout; the
# API's test above keeps them in the quick suite), are in the deep suite.
HANGS = ("spins", "sleeps", "prints_then_spins")
CLI_RUNS = [
    pytest.param(name, as_json, marks=[pytest.mark.deep] if as_json or name in HANGS else [])
    for name in CASES
    for as_json in (False, True)
]


@pytest.mark.parametrize(("name", "as_json"), CLI_RUNS)
def test_the_cli_exits_1_with_the_verdict(hostile, name, as_json, capsys):
    verdict, phrase = CASES[name]
    argv = ["check", f"{hostile}:{name}", *FLAGS, "--timeout", str(TIMEOUT),
            "--memory-limit", "1G", *(["--json"] if as_json else [])]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    if as_json:
        result = json.loads(out)  # the whole of stdout is the JSON
        assert result["verdict"] == verdict and result["seed"] == 0
        assert phrase in result["report"]
    else:
        assert f"verdict: {verdict}" in out and phrase in out


@pytest.mark.deep  # a real process printing megabytes
def test_a_flood_of_prints_is_captured_and_the_json_parses(hostile, capsys):
    # The default time limit: 200,000 prints take about 0.5 s a call here.
    # Declared: inference's probe calls would print too (two more calls).
    argv = ["check", f"{hostile}:prints_a_lot", *FLAGS[:-1], "3", "--json"]
    argv += ["--conventions", "declared"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "pass"
    assert any("printed 600,003 lines" in note for note in result["notes"]), result["notes"]
    assert result["output"]["lines"] == 200_001 and "debug line 0" in result["output"]["text"]


def test_correct_code_that_writes_into_its_arguments_passes_with_a_note(hostile):
    report = _api(f"{hostile}:writes_in_place")
    assert report.examples == 10
    (note,) = [n for n in report.notes if "wrote into its arguments" in n]
    assert "params['W1']" in note and "X" in note and "Y" in note


@pytest.mark.parametrize("as_json", [False, True])
def test_without_isolation_the_same_code_gets_the_same_verdict(hostile, as_json, capsys):
    flags = [*FLAGS, "--no-isolation", *(["--json"] if as_json else [])]
    assert main(["check", f"{hostile}:correct", *flags]) == 0
    assert main(["check", f"{hostile}:exits_1", *flags]) == 1
    out = capsys.readouterr().out
    assert "in this process" in out and "SystemExit" in out
    assert main(["check", f"{hostile}:correct", *flags, "--timeout", "5"]) == 2
    assert "--timeout: " in capsys.readouterr().err


def test_nothing_is_written_into_the_working_directory(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _api(f"{hostile}:correct")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_fails_to_load_is_a_verdict_and_a_missing_function_an_argument(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nprint('importing')\nsys.exit(3)\n")
    with pytest.raises(GradientMismatch) as caught:
        _api(f"{broken}:backprop")
    assert caught.value.verdict == "raised" and "SystemExit" in str(caught.value)
    assert "importing" in str(caught.value)  # what the import printed
    exits = tmp_path / "exits_at_import.py"
    exits.write_text("import os\nos._exit(0)\n")
    with pytest.raises(GradientMismatch) as caught:
        _api(f"{exits}:backprop")
    assert caught.value.verdict == "ended the process" and "__main__" in str(caught.value)
    fine = tmp_path / "fine.py"
    fine.write_text("def other(params, X, Y):\n    return {}\n")
    with pytest.raises(ValueError, match=r"backprop: .* has no function 'backprop'"):
        _api(f"{fine}:backprop")


# --- the same in functions of a notebook or a test (sent to the child by value) ----------


def _spinning_relu_backward(dout, cache):
    while True:
        pass


def _exiting_update(grads, state, params):
    sys.exit(0)


def _in_place_sgd(grads, state, params):
    """cs231n's habit: ``w -= lr * dw`` on the arguments themselves."""
    for key in params:
        params[key] -= 0.1 * grads[key]
    return params, state


def _in_place_relu_backward(dout, cache):
    dout[cache <= 0] = 0  # correct, but it writes into dout
    return dout


def test_a_file_that_trains_at_import_times_out(tmp_path):
    # Loading has its own limit (default: at least 10 s): a slow import is no slow call.
    from manual_bp_reference.isolation import Isolation, Sandbox, UserCodeStopped

    hangs = tmp_path / "trains_at_import.py"
    hangs.write_text("while True:\n    pass\n")
    sandbox = Sandbox({"backprop": f"{hangs}:backprop"},
                      Isolation(timeout=TIMEOUT, load_timeout=TIMEOUT))  # fmt: skip
    with pytest.raises(UserCodeStopped) as caught:
        sandbox.start()
    assert caught.value.verdict == "timed out"
    assert Isolation(timeout=1.0).loading_limit == 10.0


@pytest.mark.deep  # waits out a timeout
def test_check_layer_stops_a_hanging_backward():
    start = time.perf_counter()
    with pytest.raises(LayerMismatch) as caught:
        check_layer(
            _spinning_relu_backward, "relu", settings=Settings(timeout=TIMEOUT, max_examples=5)
        )
    assert time.perf_counter() - start < TIMEOUT + SLACK
    assert caught.value.verdict == "timed out"
    assert "the case it stopped on, pasteable" in str(caught.value)


def test_check_layer_passes_a_backward_that_writes_into_dout():
    report = check_layer(_in_place_relu_backward, "relu", settings=Settings(max_examples=20))
    assert any("backward(dout, cache) wrote into its arguments" in n for n in report.notes)


def test_check_optimizer_gives_an_exit_a_verdict():
    with pytest.raises(OptimizerMismatch) as caught:
        check_optimizer(_exiting_update, Adam(1e-3), settings=Settings(max_examples=5))
    assert caught.value.verdict == "raised" and "SystemExit" in str(caught.value)


def test_check_optimizer_passes_a_rule_that_updates_in_place():
    # Before the copies, this correct rule overwrote the checker's own params
    # and was called wrong ("no known convention explains it").
    report = check_optimizer(_in_place_sgd, SGD(0.1), settings=Settings(max_examples=20))
    assert report.examples == 20
    assert any("params['W1']" in note for note in report.notes), report.notes


def test_the_checkers_arrays_are_untouched():
    params = {"W1": np.ones((3, 2))}
    kept = params["W1"].copy()
    check_optimizer(_in_place_sgd, SGD(0.1), settings=Settings(max_examples=5))
    # The isolation copies what it sends; a call in this process copies too.
    from manual_bp_reference.isolation import Isolation, Sandbox

    for isolate in (True, False):
        with Sandbox({"update": _in_place_sgd}, Isolation(isolate=isolate)) as sandbox:
            step = sandbox.function("update", ("grads", "state", "params"))
            new_params, _ = step({"W1": np.ones((3, 2))}, {}, params)
            assert np.array_equal(params["W1"], kept)
            assert np.array_equal(new_params["W1"], kept - 0.1)


# --- a real process: the child cannot reach the parent's stdout ---------------------------


# A real process each (the deep suite but for one).
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("prints_a_lot", marks=pytest.mark.deep),
        "ends_the_process",
        pytest.param("spins", marks=pytest.mark.deep),
    ],
)
def test_a_real_process_prints_only_the_json(hostile, name):
    # The flood keeps the default time limit (about 0.5 s a call, more on a busy machine).
    timeout = [] if name == "prints_a_lot" else ["--timeout", str(TIMEOUT)]
    command = [sys.executable, "-m", "manual_bp", "check", f"{hostile}:{name}", *FLAGS[:-1],
               "3", *timeout, "--json"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + SLACK,
                          cwd=Path(hostile).parent, env={**os.environ})  # fmt: skip
    result = json.loads(done.stdout)
    expected = {"prints_a_lot": ("pass", 0), "ends_the_process": ("ended the process", 1),
                "spins": ("timed out", 1)}[name]  # fmt: skip
    assert (result["verdict"], done.returncode) == expected, done.stderr
    assert not (Path(hostile).parent / ".hypothesis").exists()


# --- a campaign's target: a hang fails its example, not the worker --------------------------


@pytest.mark.deep  # a campaign waiting out timeouts
def test_a_campaign_target_that_hangs_or_exits_fails_its_examples(hostile, tmp_path):
    from manual_bp import Net
    from manual_bp_reference.campaign import Config, run_chunk

    network = Net.of([2, 3, 1], ["tanh", "sigmoid"], "binary_cross_entropy")
    for name, said in (("spins", "timed out"), ("ends_the_process", "ended the process"),
                       ("correct", None)):  # fmt: skip
        config = Config(2, 0, 2, f"{hostile}:{name}", network=network, timeout=TIMEOUT)
        chunk = run_chunk(config, 0)
        if said is None:
            assert chunk["failures"] == [], chunk["errors"]
        else:
            assert chunk["failures"] == [0, 1]
            assert all(said in error for error in chunk["errors"]), chunk["errors"]


def test_a_campaign_target_that_exits_on_import_is_refused_up_front(tmp_path, capsys):
    exits = tmp_path / "exits_at_import.py"
    exits.write_text("import sys\nsys.exit(0)\ndef backprop(params, X, Y):\n    return {}\n")
    argv = [
        "campaign",
        "--target",
        f"{exits}:backprop",
        "--layers",
        "2,3,1",
        "--activations",
        "tanh,sigmoid",
        "--examples",
        "2",
        "--out",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--target: " in err and "SystemExit" in err and len(err.strip().splitlines()) == 1


# --- what the review found -------------------------------------------------------------------


def test_output_is_text_in_the_order_written_without_holes(hostile, capsys):
    assert main(["check", f"{hostile}:mixes_its_output", *FLAGS, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert any("printed" in note for note in result["notes"])
    from manual_bp_reference.isolation import Isolation, Sandbox

    with Sandbox({"f": f"{hostile}:mixes_its_output"}, Isolation()) as sandbox:
        f = sandbox.function("f", ("params", "X", "Y"))
        for _ in range(3):  # the fd file is emptied between calls: no NUL bytes after
            f({"W1": np.ones((3, 2)), "B1": np.ones((3, 1)), "W2": np.ones((1, 3)),
               "B2": np.ones((1, 1))}, np.ones((2, 4)), np.ones((1, 4)) / 2)  # fmt: skip
            assert "\x00" not in f.last.output.text
            assert f.last.output.text.count("raw") == 1 and "to stderr" in f.last.output.text


def test_threads_sharing_one_child_get_their_own_answers():
    import threading

    from manual_bp_reference.isolation import Isolation, Sandbox

    wrong: list[tuple[int, object]] = []
    with Sandbox({"echo": _echo}, Isolation()) as sandbox:
        echo = sandbox.function("echo", ("x",))

        def worker(offset: int) -> None:
            for i in range(50):
                answer = echo(offset + i)
                if answer != offset + i:
                    wrong.append((offset + i, answer))

        threads = [threading.Thread(target=worker, args=(1000 * k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert wrong == []


def _echo(x):
    return x


class _Key(str):
    pass


def _odd_returns(params, X, Y):
    import enum

    class Level(enum.IntEnum):
        ONE = 1

    return {_Key("W1"): np.zeros((3, 2)), "level": Level.ONE}


def test_odd_return_values_come_back_as_plain_data():
    from manual_bp_reference.isolation import Isolation, Sandbox

    with Sandbox({"f": _odd_returns}, Isolation()) as sandbox:
        value = sandbox.function("f", ("params", "X", "Y"))({}, 0, 0)
    assert type(next(iter(value))) is str and value["level"] == 1


def _divides_by_zero(params, X, Y):
    scale = 0
    return {"W1": params["W1"] / int(1 / scale)}  # the line a traceback must show


def test_a_traceback_shows_the_users_file_and_line_for_a_function_sent_by_value():
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(_divides_by_zero, *ARCH, settings=Settings(max_examples=3))
    text = str(caught.value)
    assert "test_hostile_code.py" in text and "the line a traceback must show" in text
    assert "reference/" not in caught.value.traceback


@pytest.mark.deep  # waits out a timeout
def test_a_timeout_kills_what_the_code_started_too(hostile, tmp_path, monkeypatch):
    pid_file = tmp_path / "grandchild"
    monkeypatch.setenv("GRANDCHILD_PID_FILE", str(pid_file))
    with pytest.raises(GradientMismatch) as caught:
        _api(f"{hostile}:starts_a_grandchild")
    assert caught.value.verdict == "timed out"
    pid = int(pid_file.read_text())
    for _ in range(50):  # killed with its group; reaped by init soon after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"grandchild {pid} outlived the timeout")


def _relu_forward_with_a_generator_in_its_cache(x):
    return np.maximum(x, 0), (x, (i for i in range(3)))


def _relu_backward_of_that_cache(dout, cache):
    x, _ = cache
    return dout * (x > 0)


def test_a_cache_that_cannot_be_copied_is_passed_as_it_is():
    forward = _relu_forward_with_a_generator_in_its_cache
    report = check_layer(
        _relu_backward_of_that_cache, "relu", forward=forward, settings=Settings(max_examples=10)
    )
    assert report.examples == 10


def _hangs_at_step_3(grads, state, params):
    if state.get("t", 0) >= 2:
        while True:
            pass
    return ({k: params[k] - 0.1 * grads[k] for k in params},
            {**state, "t": state.get("t", 0) + 1})  # fmt: skip


@pytest.mark.deep  # waits out a timeout
def test_a_stopped_optimizer_names_its_step():
    with pytest.raises(OptimizerMismatch) as caught:
        check_optimizer(_hangs_at_step_3, SGD(0.1), settings=Settings(max_steps=4, timeout=TIMEOUT))
    assert caught.value.verdict == "timed out" and caught.value.step >= 3, str(caught.value)


def test_json_is_printed_for_an_argument_error_too(hostile, capsys):
    assert main(["check", f"{hostile}:no_such_function", *FLAGS, "--json"]) == 2
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["verdict"] == "error" and "no function 'no_such_function'" in result["error"]
    assert "FUNCTION: " in captured.err


def test_the_child_started_ahead_is_the_one_that_runs_the_code(monkeypatch):
    """manual-bp check starts a child before it imports jax; importing jax sets
    variables of its own, which must not make the child unusable."""
    from manual_bp_reference.isolation import Isolation, Sandbox, processes, start_ahead

    while processes.SPARE:
        processes.stop(processes.SPARE.pop())
    start_ahead()
    (ahead,) = processes.SPARE
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # what importing jax sets
    with Sandbox({"f": _echo}, Isolation()) as sandbox:
        sandbox.start()
        assert sandbox._child is not None and sandbox._child.started is ahead
        assert sandbox.function("f", ("x",))(7) == 7


def test_a_sandbox_left_open_is_stopped_when_python_exits(tmp_path):
    """A notebook or script that never closes its sandbox: at exit its child and
    the spares are killed and their files closed (no ResourceWarning, no child
    left behind)."""
    script = tmp_path / "left_open.py"
    script.write_text(
        "from manual_bp_reference.isolation import Isolation, Sandbox, processes\n"
        "sandbox = Sandbox({'f': abs}, Isolation())\n"
        "sandbox.start()\n"
        "processes.keep_a_spare()  # and the spares\n"
        "print(sandbox._child.started.process.pid)\n"
    )
    done = subprocess.run([sys.executable, "-W", "default", str(script)], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert "ResourceWarning" not in done.stderr, done.stderr
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left to notice
        os.kill(int(done.stdout), 0)


# --- what travels to the child, and how often hanging code is called -------------------


HELPER = """\
import os

with open(os.environ["IMPORTED_BY"], "a") as record:
    record.write(f"{os.getpid()}\\n")


def per_sample(params, x, y):  # Nielsen-style: one sample, summed by the wrapper
    return {key: value * 0 for key, value in params.items()}
"""


def test_a_wrapped_function_travels_by_value_so_the_child_never_imports_its_module(
    tmp_path, monkeypatch
):
    """One sample at a time, the user's function is held by a wrapper of ours:
    it travels by value like a bare one, so the child does not import the
    user's module (a helper module that imports jax made every check 1.2 s)."""
    import importlib

    from manual_bp_reference.check_run import open_sandbox
    from manual_bp_reference.conventions import Conventions
    from manual_bp_reference.isolation import Isolation

    record = tmp_path / "imported_by"
    monkeypatch.setenv("IMPORTED_BY", str(record))
    (tmp_path / "student_helper.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = importlib.import_module("student_helper")
    wrapped = Conventions(per_sample=True).runnable(helper.per_sample)
    assert type(wrapped).__module__ == "manual_bp_reference.per_sample"
    with open_sandbox({"backprop": wrapped}, Isolation(timeout=10)) as sandbox:
        params = {"W1": np.ones((3, 2)), "B1": np.ones((3, 1))}
        grads = sandbox.function("backprop", ("params", "X", "Y"))(
            params, np.ones((2, 4)), np.ones((1, 4))
        )
    assert grads["W1"].shape == (3, 2)
    assert record.read_text().split() == [str(os.getpid())]  # this process only


def test_code_that_hangs_while_its_conventions_are_inferred_waits_out_one_timeout(
    tmp_path, monkeypatch
):
    calls = tmp_path / "calls"
    monkeypatch.setenv("CALLS", str(calls))

    def hangs(params, X, Y):
        import os
        import time

        with open(os.environ["CALLS"], "a") as record:
            record.write("call\n")
        time.sleep(60)

    with pytest.raises(GradientMismatch) as caught:
        check_gradients(hangs, *ARCH, settings=Settings(max_examples=10, timeout=TIMEOUT))
    assert caught.value.verdict == "timed out"
    assert "the check stopped there" in str(caught.value)
    assert calls.read_text().split() == ["call"]
