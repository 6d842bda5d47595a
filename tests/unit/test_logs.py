import logging
import os
import re
import time

from kubemetrics.logs import KlogFormatter


def record(level: int, message: str, created: float) -> logging.LogRecord:
    rec = logging.LogRecord("worker.scrape", level, __file__, 1, message, None, None)
    rec.created = created
    return rec


def test_lines_are_klog_shaped_with_the_role_tag() -> None:
    created = time.mktime((2026, 11, 27, 6, 19, 57, 0, 0, -1)) + 0.123456
    line = KlogFormatter("w0").format(record(logging.ERROR, 'Failed to scrape node node="n1"', created))
    assert line == f'E1127 06:19:57.123456 {os.getpid():7d} worker.scrape w0] Failed to scrape node node="n1"'


def test_each_level_has_its_letter_and_no_role_means_no_tag() -> None:
    formatter = KlogFormatter()
    letters = [formatter.format(record(level, "m", 0.0))[0] for level in (10, 20, 30, 40, 50)]
    assert letters == ["D", "I", "W", "E", "F"]
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ worker\.scrape\] m", formatter.format(record(20, "m", 0.0)))
