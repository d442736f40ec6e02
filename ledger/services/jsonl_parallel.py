"""Read a JSON Lines export file in a second process, beside the database writes.

A replay spends about half its time parsing lines and recomputing their hashes, and half
checking balances and writing rows. Parsing line n needs nothing from the database, so for
a large file a child process (`python -m ledger.services.jsonl_parallel FILE`) runs
`read_jsonl` over it, every check in order, and streams the checked records to the parent
in pickled chunks over a pipe, while the parent checks balances and writes the previous
chunk: on two cores the two halves overlap. A bounded queue in the parent bounds how far the
parse runs ahead. The child is a plain interpreter started for the purpose, not a
multiprocessing fork or spawn: it holds none of the parent's connections or threads and never
re-imports the caller's main module.

What the parent sees is what `read_jsonl` gives in-process: the same header, the same
records in the same order, the same `Rejected` (reason, message and line) at the same point
of the stream, an `OSError` when the file cannot be read. A failure of the child itself (a
bug, or the process killed) is raised as `ReaderFailed`, never taken for the end of the
file. Leaving the context stops the child, whatever happened.
"""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ledger.errors import Reason, Rejected
from ledger.export.jsonl_read import JsonlBook, Record, entries_of, read_jsonl
from ledger.services.prefetch import prefetch

PARALLEL_BYTES = 8 << 20
"""Files at least this large (about 25,000 entries) are parsed in a child process; below it
starting one (about 0.1 s) costs more than it saves."""
CHUNK = 5_000  # records per message: pickling is a small part of each record's cost
QUEUED = 8  # chunks read ahead of the writes: bounds the memory the parse may run ahead
READ_BUFFER = 1 << 20
_SIZE = struct.Struct(">Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the child imports this ledger


class ReaderFailed(RuntimeError):
    """The child process reading the file failed (a bug or a kill), not the file."""


@contextmanager
def open_jsonl(path: Path, *, parallel: bool | None = None) -> Iterator[JsonlBook]:
    """Yield the parsed export at `path`, its records parsed in a child process when
    `parallel` (by default: a file of PARALLEL_BYTES or more on a machine of two or more
    cores). Consume `records` inside the context."""
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and path.stat().st_size >= PARALLEL_BYTES
    if not parallel:
        with path.open(encoding="utf-8", buffering=READ_BUFFER) as lines:
            yield read_jsonl(lines)
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "ledger.services.jsonl_parallel", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        reader = _Frames(child, errors)
        try:
            _, book, assets, accounts = reader.receive()
            records = reader.records()
            yield JsonlBook(book, assets, accounts, records, entries_of(book, records))
        finally:
            reader.stop()


class _Frames:
    """The parent's end of the pipe. A thread reads the child's frames as they come (the
    read releases the GIL) a bounded number ahead (`prefetch`), so the child parses ahead
    while this process writes; `receive` unpickles them in the caller's thread, in order."""

    def __init__(self, child: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.child, self.errors = child, errors
        stream = child.stdout
        assert stream is not None
        self.frames = prefetch(lambda: _frames_of(stream), depth=QUEUED)

    def records(self) -> Iterator[Record]:
        while True:
            message = self.receive()
            if message[0] == "end":
                return
            yield from message[1]

    def receive(self) -> tuple[Any, ...]:
        """Return the child's next message; raise what it reported, or that it died."""
        frame = next(self.frames, None)
        if frame is None:
            code = self.child.wait()
            self.errors.seek(0)
            said = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
            raise ReaderFailed(
                f"the process reading the export exited (code {code}) before the end of"
                " the file" + (f": {said}" if said else "")
            )
        message: tuple[Any, ...] = pickle.loads(frame)  # our own child's bytes: trusted
        kind = message[0]
        if kind == "rejected":
            _, reason, text, details = message
            raise Rejected(Reason(reason), text, **details)
        if kind == "oserror":
            _, errno, strerror, filename = message
            raise OSError(errno, strerror, filename)
        if kind == "crash":
            raise ReaderFailed(f"the process reading the export failed:\n{message[1]}")
        return message

    def stop(self) -> None:
        """Stop the child, then the thread (its read ends when the pipe does)."""
        self.child.kill()  # a no-op once it has exited
        self.child.wait()
        self.frames.close()
        assert self.child.stdout is not None
        self.child.stdout.close()


def _frames_of(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield each whole frame's pickle until the pipe closes; a frame cut short (the child
    exited, or was killed in the middle of writing it) ends the stream like a closed pipe."""
    while len(head := stream.read(_SIZE.size)) == _SIZE.size:
        (size,) = _SIZE.unpack(head)
        frame = stream.read(size)
        if len(frame) != size:
            return
        yield frame


def _read_into(path: str, out: IO[bytes]) -> None:
    """The child: parse `path` and send the header, chunks of records, then "end"; or what
    stopped it. Each message is one frame: its length (8 bytes) and its pickle."""

    def send(*message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_SIZE.pack(len(data)))
        out.write(data)
        out.flush()

    try:
        with open(path, encoding="utf-8", buffering=READ_BUFFER) as lines:
            parsed = read_jsonl(lines)
            send("header", parsed.book, parsed.assets, parsed.accounts)
            while chunk := list(itertools.islice(parsed.records, CHUNK)):
                send("records", chunk)
        send("end")
    except BrokenPipeError:  # the parent stopped reading (it refused something): done
        return
    except Rejected as exc:
        send("rejected", exc.reason.value, exc.message, exc.context)
    except OSError as exc:
        send("oserror", exc.errno, exc.strerror, exc.filename)
    except BaseException:  # a bug: carried to the parent with its traceback
        send("crash", traceback.format_exc())


if __name__ == "__main__":
    try:
        _read_into(sys.argv[1], sys.stdout.buffer)
    except BrokenPipeError:
        os._exit(0)  # the parent is gone; no flush at exit to fail again
