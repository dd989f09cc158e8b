"""What the user sees on stderr: one line per passed check with -v, warnings always."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from .verify.minisign import sanitise


@dataclass
class Reporter:
    verbose: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def passed(self, msg: str) -> None:
        """A check passed (shown with -v)."""
        if self.verbose >= 1:
            self._emit(f"[+] {msg}")

    def info(self, msg: str) -> None:
        if self.verbose >= 1:
            self._emit(f"[*] {msg}")

    def warn(self, msg: str) -> None:
        self._emit(f"torfetch: warning: {msg}")

    def _emit(self, line: str) -> None:
        # Everything we print may contain remote text: keep it one clean line each.
        for part in line.split("\n"):
            print(sanitise(part, max_len=500), file=self.stream, flush=True)
