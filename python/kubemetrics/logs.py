"""One log line format for every kubemetrics process, shaped like klog's (what metrics-server prints), so
the front, its workers and the simulator interleave readably on one stderr and log tooling that already
parses metrics-server's lines keeps working:

    E1127 06:19:57.123456   12345 worker.scrape w0] Failed to scrape node node="n1" url="https://…" kind=timeout …

The fields are: severity letter, month+day, wall-clock time with microseconds, PID, logger name, the
process's role tag when it has one (a worker's id), then the message."""

from __future__ import annotations

import logging
import sys
import time

_SEVERITY_LETTER = {logging.DEBUG: "D", logging.INFO: "I", logging.WARNING: "W", logging.ERROR: "E"}


class KlogFormatter(logging.Formatter):
    def __init__(self, role: str = "") -> None:
        super().__init__()
        self._role = f" {role}" if role else ""

    def format(self, record: logging.LogRecord) -> str:
        letter = _SEVERITY_LETTER.get(record.levelno, "F" if record.levelno > logging.ERROR else "D")
        stamp = time.strftime("%m%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        line = f"{letter}{stamp}.{micros:06d} {record.process:7d} {record.name}{self._role}] {record.getMessage()}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure(level: int, role: str = "") -> None:
    """Route the root logger to stderr in the shared format; `role` tags every line (e.g. "w0")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KlogFormatter(role))
    logging.basicConfig(level=level, handlers=[handler])
