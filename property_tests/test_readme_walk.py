"""tools/walk_readme.py: its parsing and its runner, and the README's commands as written."""

import importlib.util
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("walk_readme", ROOT / "tools" / "walk_readme.py")
walk_readme = importlib.util.module_from_spec(_spec)
sys.modules["walk_readme"] = walk_readme  # dataclasses look their module up there
_spec.loader.exec_module(walk_readme)

SAMPLE = """\
# A README

```sh
echo one > a.txt   # state carries over from command to command
test -f a.txt && \\
  echo two >> a.txt

# a comment line
```

```python
>>> 1 + 1
2
```

<!-- readme-walk: skip (long by nature: an hour) -->
```sh
exit 1
```

```
plain output, not a shell block
```

```sh
grep -q two a.txt
false
```
"""


def test_blocks_commands_continuations_and_skip_markers_are_parsed():
    blocks = walk_readme.shell_blocks(SAMPLE)
    assert [block.commands for block in blocks] == [
        (
            "echo one > a.txt   # state carries over from command to command",
            "test -f a.txt && echo two >> a.txt",
        ),
        ("exit 1",),
        ("grep -q two a.txt", "false"),
    ]
    assert [block.skip for block in blocks] == [None, "long by nature: an hour", None]
    assert [block.line for block in blocks] == [3, 17, 25]


def test_the_walk_runs_in_order_in_one_folder_skips_marked_blocks_and_reports_failures(tmp_path):
    results = walk_readme.walk(walk_readme.shell_blocks(SAMPLE), tmp_path, timeout=30)
    assert [result.status for result in results] == ["ok", "ok", "skipped", "ok", "FAILED"]
    assert (tmp_path / "a.txt").read_text() == "one\ntwo\n"


def test_the_walk_exits_1_on_a_failure_and_0_when_all_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(walk_readme, "copy_repository", lambda source, target: None)
    readme = tmp_path / "README.md"
    readme.write_text(SAMPLE)
    assert walk_readme.main(["--readme", str(readme)]) == 1
    readme.write_text(SAMPLE.replace("false\n", "true\n"))
    assert walk_readme.main(["--readme", str(readme)]) == 0


def test_the_walk_does_not_leak_the_callers_python(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("VIRTUAL_ENV", "/some/venv")
    environment = walk_readme.fresh_environment()
    assert "PYTHONPATH" not in environment and "VIRTUAL_ENV" not in environment


def program(command: str) -> str:
    """The program a command line starts with, after ``VAR=value`` assignments."""
    words = shlex.split(command, comments=True)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]
    return words[0]


def test_every_command_the_readme_shows_runs_from_a_clone_as_written():
    """The README first, then every page of the site: what a reader may type."""
    blocks = walk_readme.blocks_of(walk_readme.documents(ROOT))
    commands = [command for block in blocks for command in block.commands]
    assert commands[0].startswith("python3.11 -m venv .venv && .venv/bin/pip install")
    assert commands[0].endswith(".venv/bin/manual-bp demo")
    for command in commands:
        for part in command.split("&&"):
            first = program(part)
            assert first.startswith(".venv/bin/") or first == "python3.11", command
    skipped = [command for block in blocks if block.skip for command in block.commands]
    assert any("mutmut run" in command for command in skipped)
    assert any("benchmarks.speed" in command for command in skipped)
    walked = [command for block in blocks if not block.skip for command in block.commands]
    for name in ("demo", "explain", "compare", "train", "audit"):
        assert any(f".venv/bin/manual-bp {name}" in command for command in walked), name
