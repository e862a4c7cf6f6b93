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
        st.integers(0, 200),  # where a "bytes" write is cut in two (mid-character too)
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
            for text, times, how, cut in writes:
                for _ in range(times):
                    if how == "print":
                        print(text)
                        printed.append(text + "\n")
                    elif how == "end":
                        print(text, end="")
                        printed.append(text)
                    elif how == "bytes":  # in order with the text, no flush needed
                        data = text.encode("utf-8", "surrogatepass") + b"\xff"
                        sys.stdout.buffer.write(data[:cut])
                        sys.stdout.buffer.write(data[cut:])
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


def run_one(function, *, native=False):
    """``Runner.run``'s reply for ``function()``: ``(kind, exception or None,
    text, chars, lines)``."""
    from manual_bp_reference.isolation.calls import Runner

    kind, payload, output, _, _ = Runner({"f": function}, interruptible=native).run(1, "f", (), ())
    detail = payload[0] if kind == "raised" else None
    return kind, detail, *output[:3]


def closes_past_the_head():
    print("x" * 5000)
    sys.stdout.close()
    print("after close")


def closes_then_flushes():
    sys.stdout.close()
    sys.stdout.flush()
    print("after close")


def rewraps_the_buffer():  # the "force UTF-8, line-buffered" idiom, past the head
    import io

    for i in range(500):
        print(f"line {i:03d} " + "x" * 10)
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)
    print("after rewrap")


def deletes_stdout():
    del sys.stdout
    sys.stderr.write("x" * 5000)


def ends_mid_character():
    sys.stdout.buffer.write(b"abc\xe2\x82")


def writes_an_int_as_bytes():
    sys.stdout.buffer.write(5)


class Odd(str):
    def __getitem__(self, index):
        return 42


def writes_a_str_subclass():
    sys.stdout.write(Odd("hi"))


def detaches():
    print("x" * 5000)
    sys.stdout.detach()


def test_what_the_code_does_to_its_streams_is_captured_and_never_crashes_the_checker():
    printed = "x" * 5000 + "\nafter close\n"
    assert run_one(closes_past_the_head) == ("returned", None, *expected(printed))
    assert run_one(closes_then_flushes) == ("returned", None, *expected("after close\n"))
    kind, _, text, chars, lines = run_one(rewraps_the_buffer)
    assert (kind, chars, lines) == ("returned", 500 * 20 + 13, 501)
    assert text.endswith("line 499 xxxxxxxxxx\nafter rewrap\n")  # in order, none lost
    assert run_one(deletes_stdout) == ("returned", None, *expected("x" * 5000))
    assert run_one(ends_mid_character)[2:] == ("abc\ufffd", 4, 1)  # the cut character counted
    kind, detail, *output = run_one(writes_an_int_as_bytes)
    assert kind == "raised" and detail.startswith("TypeError") and output == ["", 0, 0]
    assert run_one(writes_a_str_subclass)[2:] == ("hi", 2, 1)
    kind, detail, _, chars, _ = run_one(detaches)
    assert kind == "raised" and "cannot be detached" in detail and chars == 5001


def test_in_this_process_a_closed_stream_and_a_native_write_are_captured():
    def f():
        print("x" * 5000)
        sys.stdout.close()
        os.write(1, b"from C\n")

    kind, _, text, chars, lines = run_one(f, native=True)
    assert (kind, chars, lines) == ("returned", 5008, 2) and text.endswith("x\nfrom C\n")


def test_a_capture_is_freed_with_its_call_without_the_garbage_collector():
    import gc
    import weakref

    gc.disable()
    try:
        with captured() as capture:
            print("x" * 5000)
        capture.taken()
        gone = weakref.ref(capture)
        del capture
        assert gone() is None
    finally:
        gc.enable()
