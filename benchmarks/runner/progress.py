"""The progress line on stderr: a bar redrawn in place on a terminal, one line per step elsewhere (make
under CI, a log file), so a run of many minutes is visibly alive either way."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 28


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._quiet = quiet
        self._prefix = ""
        self._last_plain = ""
        self._last_plain_at = 0.0
        self._drawn = False

    def stage(self, prefix: str) -> None:
        """The scenario and collector the following lines are about."""
        self._prefix = prefix

    def note(self, text: str) -> None:
        """A line that stays."""
        if self._quiet:
            return
        self._clear()
        print(f"[{self._prefix}] {text}" if self._prefix else text, file=self._stream, flush=True)

    def error(self, text: str) -> None:
        """A line that stays and is shown even when quiet."""
        self._clear()
        print(text, file=self._stream, flush=True)

    def bar(self, what: str, done: float, total: float, detail: str = "", eta_seconds: float | None = None) -> None:
        if self._quiet:
            return
        share = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
        filled = round(share * _WIDTH)
        eta = f" {_duration(eta_seconds)} left" if eta_seconds is not None else ""
        line = f"[{self._prefix}] {what} [{'#' * filled}{'.' * (_WIDTH - filled)}] {share:4.0%} {detail}{eta}"
        if self._tty:
            self._stream.write("\r\x1b[K" + line)
            self._stream.flush()
            self._drawn = True
            return
        # Plain output: a line when the step changes, or every 30 s.
        key = f"{what} {detail}"
        now = time.monotonic()
        if key != self._last_plain or now - self._last_plain_at >= 30:
            print(line, file=self._stream, flush=True)
            self._last_plain, self._last_plain_at = key, now

    def _clear(self) -> None:
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[K")
            self._drawn = False
