"""The one runner of the operator tools (``sign``, ``monitor``): trio, SIGTERM as Ctrl-C, one line per failure.

Both tools keep their progress on disk, so an interruption is reported as resumable rather than cleaned up.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import TypeVar

from ..errors import TorfetchError

T = TypeVar("T")


class OperatorExit(Exception):
    """The tool ended with this exit code; its one line is already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_operator(tool: str, resume_note: str, verbose: Callable[[], int], start: Callable[[], T]) -> T:
    """Run ``start()`` (parse, then trio.run); map what escapes it to an exit code in OperatorExit.

    ``verbose`` is asked only when an error is printed: it is known once ``start`` has parsed the arguments.
    """
    from ..workflow import first_error

    interrupted = f"torfetch {tool}: interrupted ({resume_note})"
    try:
        signal.signal(signal.SIGTERM, _interrupt)  # a stopped systemd unit: same as Ctrl-C, records stay
        return start()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        raise OperatorExit(130) from None
    except TorfetchError as exc:
        print(exc.diagnostics() if verbose() else exc.one_line(), file=sys.stderr)
        raise OperatorExit(exc.exit_code) from None
    except BaseExceptionGroup as eg:
        err = first_error(eg)
        if isinstance(err, KeyboardInterrupt):
            print(interrupted, file=sys.stderr)
            raise OperatorExit(130) from None
        if isinstance(err, TorfetchError):
            print(err.one_line(), file=sys.stderr)
            raise OperatorExit(err.exit_code) from None
        raise
