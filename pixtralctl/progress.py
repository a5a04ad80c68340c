"""Progress output: one updating line on a terminal, plain lines (one per change) in CI logs."""

from __future__ import annotations

import sys
from typing import TextIO

# A log (CI, a file) gets a line on every change of phase, and at least this often while a phase lasts, so a
# long wait still says what it waits for and what the last probe answered.
REPEAT_SECONDS = 30


class Progress:
    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._last: str | None = None
        self._printed_at = 0.0
        self._line_shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        # A command that stops with an error leaves the terminal on a clean line for the message that follows.
        self._clear()

    def update(self, phase: str, elapsed: float, detail: str) -> None:
        if self.live:
            self.stream.write(f"\r\033[K{phase:<10} {elapsed:6.0f}s  {detail}"[:200])
            self.stream.flush()
            self._line_shown = True
        elif phase != self._last or elapsed - self._printed_at >= REPEAT_SECONDS:
            print(f"[{elapsed:6.1f}s] {phase}: {detail}", file=self.stream, flush=True)
            self._printed_at = elapsed
        self._last = phase

    def done(self, message: str) -> None:
        self.note(message)

    def note(self, message: str) -> None:
        """A line of its own, between the updates."""
        self._clear()
        print(message, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self._line_shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._line_shown = False
