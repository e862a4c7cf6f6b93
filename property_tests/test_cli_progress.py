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
    # Draw every step, however fast or slow.  (tqdm reads TQDM_* variables once,
    # when it is imported, so in a worker that imported it before this test an
    # environment variable would be ignored: the defaults are patched instead.)
    import tqdm

    original_init = tqdm.tqdm.__init__

    def every_step(self, *args, **kwargs):
        kwargs.setdefault("mininterval", 0)
        kwargs.setdefault("miniters", 1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(tqdm.tqdm, "__init__", every_step)
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
