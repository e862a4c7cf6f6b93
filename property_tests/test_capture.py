"""What a user's code prints is kept bounded and exact: its first ``HEAD_CHARS``
and last ``TAIL_CHARS`` characters, every character and line counted, whether
it went through ``print``, ``sys.stderr``, ``sys.stdout.buffer`` or a kept
reference to the stream, before or after the capture hands the streams to its
C-buffered tail."""

import os
import sys

from hypothesis import example, given
from hypothesis import strategies as st

from manual_bp_reference.isolation.calls import captured
from manual_bp_reference.isolation.records import HEAD_CHARS, TAIL_CHARS


def expected(printed: str) -> tuple[str, int, int]:
    """``Capture.taken`` of ``printed``, from the whole text at once."""
    head, rest = printed[:HEAD_CHARS], printed[HEAD_CHARS:]
    text = head
    if rest:
        skipped = len(rest) - min(len(rest), TAIL_CHARS)
        marker = f"\n... ({skipped:,} characters) ...\n" if skipped > 0 else ""
        text += marker + rest[-TAIL_CHARS:]
    lines = printed.count("\n") + (bool(printed) and not text.endswith("\n"))
    return text, len(printed), lines


# A write: some text (any code point, surrogates and line breaks included),
# repeated to cross the head and the tail, and the way it is written.
WRITES = st.lists(
    st.tuples(
        st.text(st.characters(codec=None), max_size=40),
        st.integers(1, 400),
        st.sampled_from(["print", "stderr", "kept", "end", "bytes"]),
    ),
    max_size=12,
)


@given(WRITES)
def test_the_capture_keeps_the_head_and_tail_and_counts_everything(writes):
    read, mirror = os.pipe()
    os.set_blocking(read, False)
    saved = sys.stdout, sys.stderr
    printed = []
    try:
        with captured(mirror=mirror) as capture:
            for text, times, how in writes:
                for _ in range(times):
                    if how == "print":
                        print(text)
                        printed.append(text + "\n")
                    elif how == "end":
                        print(text, end="")
                        printed.append(text)
                    elif how == "bytes":  # flushed first, as at a pipe, for the order
                        sys.stdout.flush()
                        sys.stdout.buffer.write(text.encode("utf-8", "surrogatepass") + b"\xff")
                        printed.append(text + "\ufffd")  # an invalid byte: replaced
                    elif how == "stderr":
                        sys.stderr.write(text)
                        printed.append(text)
                    else:  # the capture itself, kept before it handed the streams over
                        capture.write(text)
                        printed.append(text)
        assert (sys.stdout, sys.stderr) == saved
        whole = "".join(printed)
        assert capture.taken() == expected(whole)
        mirrored = b""
        while chunk := _read(read):
            mirrored += chunk
        assert mirrored == whole[:HEAD_CHARS].encode("utf-8", "replace")
        assert capture.taken() == ("", 0, 0)  # emptied
    finally:
        sys.stdout, sys.stderr = saved
        os.close(read)
        os.close(mirror)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


@given(st.lists(st.integers(0, 1500), max_size=30))
@example([3 * TAIL_CHARS + 2, TAIL_CHARS - 1])  # trimmed to one character short of the tail
def test_the_tail_keeps_exactly_its_last_characters_whatever_the_chunks(sizes):
    # The chunks ``rest`` hands over are 8 KiB; here any size, to reach each
    # boundary of the trimming.
    with captured() as capture:
        print("x" * (HEAD_CHARS - 1))  # the head, full
        chunks = [chr(ord("a") + i % 26) * size for i, size in enumerate(sizes)]
        for chunk in chunks:
            capture.add_to_tail(chunk)
    assert capture.taken() == expected("x" * (HEAD_CHARS - 1) + "\n" + "".join(chunks))
