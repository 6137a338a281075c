"""What servicekit's log lines look like, for tests that read a service's output."""

from __future__ import annotations

import re

# The head of a `LOG_FORMAT=text` line: timestamp, level, logger, the ids; the event follows.
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ "
    r"\[request=\S+( job=\S+)?\] "
)
