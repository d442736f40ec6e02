"""A helper process of our own, and the pipe of pickled messages it answers on.

Two jobs run half of their work in a second process so that a machine's second core takes
it: a replay parses the export there (`jsonl_parallel`), a verify audits the second half of
a long book there (`verify_slice`). The child is a plain interpreter started for the purpose
(`python -m MODULE`), not a multiprocessing fork or spawn: it holds none of the parent's
connections or threads and never re-imports the caller's main module, so a library user's
script needs no `if __name__ == "__main__"` guard.

Each message is one frame on the child's stdout: its length (8 bytes) and its pickle. The
child's last message says how it ended: its own messages, or "rejected" (a `Rejected`, raised
again in the parent), "oserror", or "crash" (a bug, with its traceback). A child that exits
without one (killed, or dead in the middle of a frame) is `ChildFailed`, never taken for the
end of its work. Leaving `run_child` stops the child, whatever happened.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ledger.errors import Reason, Rejected
from ledger.services.prefetch import prefetch

_SIZE = struct.Struct(">Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the child imports this ledger

Send = Callable[..., None]


class ChildFailed(RuntimeError):
    """A helper process failed (a bug or a kill), not the work it was given."""


@contextmanager
def run_child(
    module: str,
    args: list[str],
    *,
    doing: str,
    until: str,
    given: object = None,
    failure: type[ChildFailed] = ChildFailed,
    depth: int = 8,
) -> Iterator[Child]:
    """Start `python -m module *args`, pickle `given` to its stdin (not its command line: it
    may hold a database password), and yield the parent's end of its pipe. `doing` and
    `until` name the work in a failure ("the process DOING exited (code 9) before UNTIL");
    `depth` bounds how many frames are read ahead of `receive`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL if given is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
        child = Child(process, errors, doing=doing, until=until, failure=failure, depth=depth)
        try:
            if given is not None:
                assert process.stdin is not None
                with process.stdin as stdin:
                    pickle.dump(given, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            yield child
        finally:
            child.stop()


class Child:
    """The parent's end of the pipe. A thread reads the child's frames as they come (the
    read releases the GIL) up to `depth` ahead (`prefetch`), so the child works ahead while
    this process does its half; `receive` unpickles them in the caller's thread, in order."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        errors: IO[bytes],
        *,
        doing: str = "helping",
        until: str = "its end",
        failure: type[ChildFailed] = ChildFailed,
        depth: int = 8,
    ) -> None:
        self.process, self.errors = process, errors
        self.doing, self.until, self.failure = doing, until, failure
        stream = process.stdout
        assert stream is not None
        self.frames = prefetch(lambda: _frames_of(stream), depth=depth)

    def receive(self) -> tuple[Any, ...]:
        """Return the child's next message; raise what it reported, or that it died."""
        frame = next(self.frames, None)
        if frame is None:
            code = self.process.wait()
            self.errors.seek(0)
            said = self.errors.read()[-2000:].decode("utf-8", "replace").strip()
            raise self.failure(
                f"the process {self.doing} exited (code {code}) before {self.until}"
                + (f": {said}" if said else "")
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
            raise self.failure(f"the process {self.doing} failed:\n{message[1]}")
        return message

    def stop(self) -> None:
        """Stop the child, then the thread (its read ends when the pipe does)."""
        self.process.kill()  # a no-op once it has exited
        self.process.wait()
        self.frames.close()
        assert self.process.stdout is not None
        self.process.stdout.close()


def _frames_of(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield each whole frame's pickle until the pipe closes; a frame cut short (the child
    exited, or was killed in the middle of writing it) ends the stream like a closed pipe."""
    while len(head := stream.read(_SIZE.size)) == _SIZE.size:
        (size,) = _SIZE.unpack(head)
        frame = stream.read(size)
        if len(frame) != size:
            return
        yield frame


def serve(work: Callable[[Send], None]) -> None:
    """The child's side: run `work(send)`, where `send(*message)` writes one frame to
    stdout, and report how it ended if it raised. Call it from the module's `__main__`."""
    out = sys.stdout.buffer

    def send(*message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_SIZE.pack(len(data)))
        out.write(data)
        out.flush()

    try:
        try:
            work(send)
        except BrokenPipeError:  # the parent stopped reading (it is done with us)
            raise
        except Rejected as exc:
            send("rejected", exc.reason.value, exc.message, exc.context)
        except OSError as exc:
            send("oserror", exc.errno, exc.strerror, exc.filename)
        except BaseException:  # a bug: carried to the parent with its traceback
            send("crash", traceback.format_exc())
    except BrokenPipeError:
        os._exit(0)  # the parent is gone; no flush at exit to fail again


def received() -> Any:
    """The child's side: the object the parent passed as `given`."""
    return pickle.load(sys.stdin.buffer)  # from our own parent: trusted
