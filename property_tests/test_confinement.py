"""Confined code writes only in its folder and reads only it and Python's files
(``Isolation.confine``, Linux Landlock): what a grader needs to run a class's
submissions side by side."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from manual_bp import Net
from manual_bp_reference.check import GradientMismatch, check_gradients
from manual_bp_reference.isolation import Isolation, Sandbox, confinement
from manual_bp_reference.settings import Settings

pytestmark = pytest.mark.skipif(
    confinement.abi_version() == 0, reason="Linux Landlock (kernel 5.13+) is not available here"
)
NET = Net.of([2, 2, 1], ["tanh", "sigmoid"])


def submission(folder, body: str) -> str:
    (folder / "student.py").write_text(textwrap.dedent(body))
    return f"{folder / 'student.py'}:backprop"


@pytest.fixture
def two(tmp_path):
    mine, theirs = tmp_path / "alice", tmp_path / "bob"
    mine.mkdir(), theirs.mkdir()
    (theirs / "answers.py").write_text("SECRET = 42\n")
    return mine, theirs


@pytest.mark.parametrize(
    "action",
    [
        "open({outside!r}, 'w').write('x')",  # beside the submissions
        "open('../written.txt', 'w').write('x')",  # out of its own folder
        "open({theirs!r}).read()",  # another student's file
    ],
)
def test_writing_outside_or_reading_another_folder_is_refused(two, tmp_path, action):
    mine, theirs = two
    outside = tmp_path / "written.txt"
    code = action.format(outside=str(outside), theirs=str(theirs / "answers.py"))
    function = submission(
        mine,
        f"""
        def backprop(params, X, Y):
            {code}
            return {{}}
    """,
    )
    settings = Settings(max_examples=3, folder=str(mine), confine=True)
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(function, NET, settings=settings)
    assert caught.value.verdict == "raised"
    assert "PermissionError" in caught.value.traceback
    assert not outside.exists()


def test_confined_code_works_in_its_own_folder_and_imports_as_usual(two):
    mine, _ = two
    function = submission(
        mine,
        """
        import json
        import numpy as np

        def backprop(params, X, Y):
            with open("notes.txt", "w") as f:
                f.write("ran")
            A1 = np.tanh(params["W1"] @ X + params["B1"])
            A2 = 1 / (1 + np.exp(-(params["W2"] @ A1 + params["B2"])))
            dZ2 = (A2 - Y) / X.shape[1]
            dZ1 = (params["W2"].T @ dZ2) * (1 - A1**2)
            return {"W1": dZ1 @ X.T, "B1": dZ1.sum(axis=1, keepdims=True),
                    "W2": dZ2 @ A1.T, "B2": dZ2.sum(axis=1, keepdims=True)}
    """,
    )
    settings = Settings(max_examples=5, folder=str(mine), confine=True)
    check_gradients(function, NET, settings=settings)
    assert (mine / "notes.txt").read_text() == "ran"


def test_the_folder_is_the_working_directory_without_confinement(tmp_path):
    (tmp_path / "where.py").write_text("import os\ndef here():\n    return os.getcwd()\n")
    with Sandbox({"here": f"{tmp_path / 'where.py'}:here"}, Isolation(folder=str(tmp_path))) as box:
        assert box.function("here", ())() == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"folder": "/no/such/folder"}, ValueError, "folder: expected an existing folder"),
        ({"folder": 3}, TypeError, "folder: expected a path"),
        ({"confine": "yes"}, TypeError, "confine: expected True or False"),
        ({"confine": True, "isolate": False, "timeout": None}, ValueError, "needs a child"),
    ],
)
def test_bad_folder_or_confine_is_refused(options, error, match):
    with pytest.raises(error, match=match):
        Isolation(**options)


@pytest.mark.skipif(confinement.abi_version() < 6, reason="Landlock's signal scope needs ABI 6")
def test_confined_code_cannot_kill_the_checker(two):
    mine, _ = two
    function = submission(
        mine,
        """
        import os, signal

        def backprop(params, X, Y):
            os.kill(os.getppid(), signal.SIGKILL)
            return {}
    """,
    )
    settings = Settings(max_examples=3, folder=str(mine), confine=True)
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(function, NET, settings=settings)
    assert "PermissionError" in caught.value.traceback  # and this test process lives on


def raised_in(mine, body: str, **settings_) -> str:
    """The traceback of a confined ``backprop`` that runs ``body`` (it must raise)."""
    function = submission(mine, "def backprop(params, X, Y):\n" + textwrap.indent(body, "    "))
    settings = Settings(max_examples=3, folder=str(mine), confine=True, **settings_)
    with pytest.raises(GradientMismatch) as caught:
        check_gradients(function, NET, settings=settings)
    assert caught.value.verdict == "raised", caught.value
    return caught.value.traceback


@pytest.mark.skipif(confinement.abi_version() < 4, reason="Landlock's TCP rules need ABI 4")
def test_confined_code_opens_no_tcp_connection(two):
    """Nothing to reach a grader's Dask scheduler (or the network) with."""
    import socket

    mine, _ = two
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        assert "PermissionError" in raised_in(mine, body)


def test_a_folder_on_the_checkers_sys_path_is_not_readable(two, tmp_path, monkeypatch):
    """A grader started in the course's folder has it on sys.path: the
    submissions there stay unreadable."""
    mine, theirs = two
    monkeypatch.syspath_prepend(str(tmp_path))  # tmp_path holds both students' folders
    body = f"open({str(theirs / 'answers.py')!r}).read()\n"
    assert "PermissionError" in raised_in(mine, body)


def test_existing_files_under_dev_are_not_writable(two, tmp_path):
    mine, _ = two
    shared = Path("/dev/shm") / f"manual-bp-test-{tmp_path.name}"
    if not shared.parent.is_dir():
        pytest.skip("no /dev/shm here")
    shared.write_text("teacher's\n")
    try:
        body = f"open({str(shared)!r}, 'a').write('pwned')\n"
        assert "PermissionError" in raised_in(mine, body)
        assert shared.read_text() == "teacher's\n"
    finally:
        shared.unlink()


def test_a_process_the_code_detaches_ends_with_its_check(two, tmp_path):
    """A double fork into a new session leaves the child's process group; the
    checker adopts it (a subreaper) and kills it when the check ends."""
    import time

    mine, _ = two
    body = """
        import os, time

        def backprop(params, X, Y):
            if not os.path.exists("forked"):  # once, however often the check calls
                open("forked", "w").close()
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        with open("pid.tmp", "w") as f:
                            f.write(str(os.getpid()))
                        os.rename("pid.tmp", "pid")
                        time.sleep(60)
                    os._exit(0)
                while not os.path.exists("pid"):
                    time.sleep(0.01)
            raise RuntimeError("detached a process")
    """
    function = submission(mine, body)
    settings = Settings(max_examples=1, folder=str(mine), confine=True, shrink=False)
    with pytest.raises(GradientMismatch):
        check_gradients(function, NET, settings=settings)
    pid = int((mine / "pid").read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), "the detached process outlived its check"
