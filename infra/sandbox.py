"""Run one function in a child process with memory, CPU and wall-clock limits, killable.

For work on untrusted input (uploaded models, users' training jobs) that could blow up or run
for ever: the child is forked by multiprocessing's fork server (a clean single-threaded process
started once, never a fork of an asyncio process with threads) that has already imported the
heavy modules (``preload``), limited by ``RLIMIT_AS`` and ``RLIMIT_CPU``, killed on the wall
timeout or when the awaiting task is cancelled. The parent never blocks its event loop and
never unpickles what the child sends: after touching untrusted input the child is untrusted too,
so its result travels as JSON (``fn`` must return JSON-serialisable data), its size bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import orjson

MAX_RESULT_BYTES = 16 * 1024 * 1024
"""Default cap on the JSON result a child may send back (a compromised child cannot flood us)."""

DEFAULT_PRELOAD = ("numpy", "pandas", "skops.io")
"""What every sandboxed job here imports (``skops.io`` imports all of scikit-learn's estimators)."""

# Children run under RLIMIT_AS. pandas 3 keeps text in pyarrow, whose default allocator
# (mimalloc) reserves address space in large arenas and fails ("malloc of size 64 failed") when
# the limit is near, seen about once in three uploads with a reference CSV under a 1 GiB limit.
# glibc's malloc asks for what it uses. Set before the fork server starts, so children inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

_CONTEXT = multiprocessing.get_context("forkserver")
_preload_lock = threading.Lock()
_preload_chosen = False


def preload(*modules: str) -> None:
    """Modules the fork server imports once, besides ``DEFAULT_PRELOAD``, so children start in
    milliseconds instead of importing scikit-learn each time. Only the first call counts (the
    server starts once per process); ``run_limited`` makes it with its function's module."""
    global _preload_chosen
    with _preload_lock:
        if not _preload_chosen:
            _preload_chosen = True
            # Not "__main__": Python 3.11's fork server never gets its path. A child re-runs a
            # main *script* (as "__mp_main__"), so scripts keep their imports light or lazy;
            # ``python -m pkg`` mains are skipped (the services and pytest run that way).
            chosen = [*DEFAULT_PRELOAD, *(m for m in modules if m and m != "__main__")]
            _CONTEXT.set_forkserver_preload(chosen)


PROGRESS_FRAME = b"\x00"
"""Prefix of a progress frame (JSON never starts with it); the last frame is the outcome."""


class SandboxError(Exception):
    """Base of every way a sandboxed call can fail."""


class SandboxTimeout(SandboxError):
    """The child ran past its wall-clock timeout or its CPU-time limit and was killed."""


class SandboxMemoryError(SandboxError):
    """The child ran out of its address-space limit."""


class SandboxFailed(SandboxError):
    """The function raised, or the child died without an answer.

    ``error_type`` is the qualified name of the child's exception class (``""`` if it crashed).
    """

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def _set_limits(memory_bytes: int | None, cpu_seconds: float | None) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cpu_seconds is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        # The limit counts the interpreter's start and imports too; give fn its own budget.
        soft = int(used.ru_utime + used.ru_stime + cpu_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    if memory_bytes is not None:
        # Address space already mapped by the interpreter and its imports, plus fn's budget.
        with open("/proc/self/statm", "rb") as statm:
            mapped = int(statm.read().split()[0]) * resource.getpagesize()
        limit = mapped + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child_main(
    conn: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    memory_bytes: int | None,
    cpu_seconds: float | None,
    streams: bool = False,
) -> None:
    """Child side: set the limits, call ``fn``, send one JSON outcome, exit at once."""

    def report(item: Any) -> None:
        conn.send_bytes(PROGRESS_FRAME + orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY))

    try:
        _set_limits(memory_bytes, cpu_seconds)
        kwargs: dict[str, Any] = {"report": report} if streams else {}
        outcome: dict[str, Any] = {"ok": fn(*args, **kwargs)}
    except MemoryError as exc:
        outcome = {"memory": str(exc) or "out of memory"}
    except BaseException as exc:
        kind = type(exc)
        outcome = {"error": str(exc), "type": f"{kind.__module__}.{kind.__qualname__}"}
    try:
        payload = orjson.dumps(outcome, option=orjson.OPT_SERIALIZE_NUMPY)
    except MemoryError:
        payload = b'{"memory": "out of memory while encoding the result"}'
    except Exception as exc:
        payload = orjson.dumps({"error": f"result is not JSON-serialisable: {exc}", "type": ""})
    try:
        conn.send_bytes(payload)
        conn.close()
    finally:
        # No interpreter shutdown (atexit hooks, non-daemon threads): the answer is sent.
        os._exit(0)


def _describe_death(exitcode: int | None) -> SandboxError:
    if exitcode is not None and exitcode < 0:
        signum = -exitcode
        if signum == signal.SIGXCPU:
            return SandboxTimeout("the child process exceeded its CPU-time limit")
        name = signal.Signals(signum).name if signum in signal.valid_signals() else str(signum)
        return SandboxFailed(f"the child process was killed by {name}")
    return SandboxFailed(f"the child process exited with code {exitcode} without an answer")


def _outcome_of(payload: bytes | None, exitcode: int | None, refusal: str) -> Any:
    if refusal:
        raise SandboxFailed(refusal)
    if payload is None:
        raise _describe_death(exitcode)
    try:
        outcome = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise SandboxFailed(f"the child process sent an unreadable answer: {exc}") from None
    if not isinstance(outcome, dict):
        raise SandboxFailed("the child process sent an unreadable answer")
    if "ok" in outcome:
        return outcome["ok"]
    if "memory" in outcome:
        raise SandboxMemoryError(f"the child process ran out of memory: {outcome['memory']}")
    raise SandboxFailed(str(outcome.get("error", "")), str(outcome.get("type", "")))


async def run_limited(
    fn: Callable[..., Any],
    *args: Any,
    memory_bytes: int | None,
    cpu_seconds: float | None,
    timeout_s: float,
    max_result_bytes: int = MAX_RESULT_BYTES,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """Call ``fn(*args)`` in a fresh child process under limits; return its JSON-decoded result.

    ``fn`` must be a module-level function (the child imports it); ``args`` are pickled to the
    child (the parent is trusted), the result comes back as JSON (the child is not). Limits:
    ``memory_bytes`` of address space (``RLIMIT_AS``) and ``cpu_seconds`` of CPU time
    (``RLIMIT_CPU``) on top of what the interpreter and its imports already use (``None``: no
    limit); ``timeout_s`` of wall time from the start, spawn included. Raises ``SandboxTimeout``,
    ``SandboxMemoryError`` or ``SandboxFailed``. Cancelling the awaiting task kills the child.

    With ``progress``, ``fn`` is also given a keyword ``report``: each ``report(item)`` in the child
    (JSON-serialisable, at most ``max_result_bytes``) reaches ``progress(item)`` on the event loop
    while the child runs (a training job's log lines and progress).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bytes | None, int | None, str]] = loop.create_future()
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(
        target=_child_main,
        args=(sender, fn, args, memory_bytes, cpu_seconds, progress is not None),
        name=f"sandbox:{getattr(fn, '__qualname__', 'fn')}",
        daemon=True,
    )

    def deliver(result: tuple[bytes | None, int | None, str]) -> None:
        if not done.done():
            done.set_result(result)

    def wait_for_child() -> None:
        # A plain thread, not the loop's default executor: a long job must not hold its slots.
        payload: bytes | None = None
        refusal = ""
        try:
            payload = receiver.recv_bytes(max_result_bytes)
            while progress is not None and payload.startswith(PROGRESS_FRAME):
                with contextlib.suppress(orjson.JSONDecodeError, RuntimeError):
                    loop.call_soon_threadsafe(progress, orjson.loads(payload[1:]))
                payload = receiver.recv_bytes(max_result_bytes)
        except EOFError:
            payload = None  # died without answering
        except OSError:
            payload = None
            refusal = f"the child process answered more than {max_result_bytes} bytes"
        finally:
            receiver.close()
        if payload is None:
            process.kill()
        process.join()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, (payload, process.exitcode, refusal))

    def launch() -> None:
        # In a thread: the first start waits for the fork server to import its preloads.
        try:
            process.start()
        except BaseException:
            receiver.close()  # no child, no thread to read from it
            raise
        finally:
            sender.close()  # the child holds its copy; ours must go so its death reads as EOF
        threading.Thread(target=wait_for_child, name=process.name, daemon=True).start()

    def stop(_: object = None) -> None:
        if not starting.done():
            starting.add_done_callback(stop)  # kill it as soon as it exists
        elif not starting.cancelled() and starting.exception() is None:
            process.kill()  # the waiting thread reaps it

    preload(getattr(fn, "__module__", ""))
    starting = loop.run_in_executor(None, launch)
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(starting)
            payload, exitcode, refusal = await done
    except TimeoutError:
        stop()
        raise SandboxTimeout(f"the child process ran longer than {timeout_s:g} s") from None
    except BaseException:
        stop()  # cancelled: the child goes with the task
        raise
    return _outcome_of(payload, exitcode, refusal)
