"""demo, train and audit show a tqdm bar on a terminal, and nothing otherwise or under --quiet."""

import contextlib
import io

import pytest

from manual_bp.cli import main
from property_tests.test_cli_train import MOONS


class Terminal(io.StringIO):
    """stderr as a terminal would be: ``isatty()`` is true."""

    def isatty(self) -> bool:
        return True


def run(argv: list[str], stderr: io.StringIO) -> tuple[int, str, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, out.getvalue(), stderr.getvalue()


COMMANDS = {
    "demo": (
        ["demo", "--epochs", "6", "--check-every", "3", "--samples", "20"],
        "training: ",
        "6/6",
    ),
    "train": (MOONS, "training: ", "6/6"),  # test_cli_train's run: jax has compiled it
    "audit": (
        ["audit", "--depths", "1", "--widths", "2,3", "--dtypes", "float64", "--batch", "4"],
        "configurations: ",
        "2/2",
    ),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_progress_bar_on_a_terminal_only(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # draw every step, however fast
    # ... and however slow: without a fixed miniters tqdm adapts it to the
    # time between steps, and under load it skipped the last one.
    monkeypatch.setenv("TQDM_MINITERS", "1")
    argv, description, done = COMMANDS[name]
    if name != "demo":
        argv = [*argv, "--out", str(tmp_path)]
    code, printed, bar = run(argv, Terminal())
    assert code == 0
    assert description in bar and done in bar and "\r" in bar, bar
    assert description not in printed  # the bar stays on stderr
    code, printed_off_terminal, quiet = run(argv, io.StringIO())
    assert code == 0 and quiet == ""
    code, _, quiet = run([*argv, "--quiet"], Terminal())
    assert code == 0 and quiet == ""
    assert printed_off_terminal.replace(str(tmp_path), "") == printed.replace(str(tmp_path), "")
