"""Signals end a run the way a failed check does: cancelled, cleaned up, one line, non-zero exit.

pacman forwards Ctrl-C (SIGINT) to its XferCommand; service managers and
``kill`` send SIGTERM; a closed terminal sends SIGHUP. A Python signal handler
that raises ``KeyboardInterrupt`` can fire anywhere (inside trio's machinery,
half-way through a cleanup) and gives tracebacks instead of cleanup. Instead the
run gets a top-level nursery with one more task: a watcher on
``trio.open_signal_receiver``. The first signal cancels the workflow's cancel
scope, so every ``finally`` and ``with`` in it runs as for any cancellation (the
temporary file is removed, ``--tor launch``'s tor is stopped and its
DataDirectory deleted); later signals are absorbed while that cleanup runs. Then
``Interrupted`` (exit 130 for each of the three signals, as the README's table
says) is raised. A signal that torfetch was started with ignored (``nohup``
ignores SIGHUP) stays ignored.

A signal that arrives after the workflow has already returned does not undo
it: the file was handed over whole and verified.

Before trio runs (argument parsing, imports) a ``SignalLatch`` makes the same
signals raise ``EarlySignal``; nothing has been created yet then, so there is
nothing to clean.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import Interrupted

T = TypeVar("T")

INTERRUPT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def watched_signals() -> tuple[int, ...]:
    """INTERRUPT_SIGNALS minus those this process was started with ignored."""
    return tuple(s for s in INTERRUPT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)


class EarlySignal(BaseException):
    """One of INTERRUPT_SIGNALS arrived before the trio run (nothing to clean up yet)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalLatch:
    """The Python-level handler for INTERRUPT_SIGNALS outside trio's signal receiver.

    Armed (before the run): a signal raises ``EarlySignal``. Once the run
    starts it only records: a signal in the instant before the receiver opens
    is picked up by ``run_interruptible``, and one after the receiver closed
    (trio re-delivers those) can no longer break the exit path.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed = True
        self._previous: dict[int, object] = {}
        self.signals: tuple[int, ...] = ()

    def __enter__(self) -> "SignalLatch":
        # a signal the parent set to SIG_IGN stays ignored (`nohup pacman -Syu` must survive a hangup)
        self.signals = watched_signals()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        """Give the handlers back (``main`` may be called in a process that had its own)."""
        self.armed = False
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        if self.armed:
            raise EarlySignal(signum)


@dataclass
class _Outcome:
    done: bool = False
    value: object = None
    error: Exception | None = None
    signum: int | None = None


async def run_interruptible(fn: Callable[[], Awaitable[T]], *, output_name: str,
                            latch: SignalLatch | None = None) -> T:
    """Run ``fn()``; on SIGINT/SIGTERM/SIGHUP cancel it, let it clean up, raise ``Interrupted``.

    Errors from ``fn`` come out as they are (not wrapped in an ExceptionGroup).
    """
    import trio  # here, not at the top: usage errors are reported before trio is even imported

    out = _Outcome()
    work = trio.CancelScope()
    if latch is not None:
        latch.armed = False  # inside trio a handler must never raise

    async def watch(signals: AsyncIterator[int]) -> None:
        async for signum in signals:  # ends when the nursery is cancelled below
            if out.signum is None and not out.done:
                out.signum = signum
                work.cancel()

    async def body() -> None:
        with work:
            try:
                out.value = await fn()
                out.done = True
            except Exception as exc:  # Cancelled is a BaseException: it goes to `work`
                out.error = exc

    watched = latch.signals if latch is not None else watched_signals()
    if not watched:  # every one of them ignored by whoever started us: nothing to watch
        return await fn()
    with trio.open_signal_receiver(*watched) as signals:
        if latch is not None and latch.signum is not None:
            out.signum = latch.signum  # arrived while trio was starting
            work.cancel()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, signals)
            await body()
            nursery.cancel_scope.cancel()
    if out.done:
        return out.value  # type: ignore[return-value]
    if out.signum is not None:
        raise Interrupted(out.signum, output_name)
    if out.error is not None:
        raise out.error
    raise RuntimeError("the run was cancelled without a signal")  # pragma: no cover - nothing else cancels `work`
