"""Structured logging: key=value text for people, one JSON object a line for collectors."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Attributes a log call may pass through `extra=` that belong in the structured output.
CONTEXT_KEYS = ("event_id", "room_id", "sender", "ref", "txn_id", "attempt", "delay")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Every character str.splitlines() breaks a line at: any of them in a message could start
# what a reader or a collector takes for a record of its own.
_LINE_BREAKS = str.maketrans(
    {"\n": "\\n", "\r": "\\r"} | {c: ascii(c)[1:-1] for c in "\v\f\x1c\x1d\x1e\x85\u2028\u2029"}
)


def one_line(text: str) -> str:
    """`text` with its line breaks escaped (a newline reads `\\n`)."""
    return text.translate(_LINE_BREAKS)


class TextFormatter(logging.Formatter):
    """One record, one line: what a log call was given (a command's text, a room name, an
    exception's message) may hold newlines, and must not forge a record of its own. A
    traceback keeps its lines, each indented, so it reads as part of its record."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        context = " ".join(
            f"{key}={one_line(str(getattr(record, key)))}"
            for key in CONTEXT_KEYS
            if hasattr(record, key)
        )
        if context:
            line = f"{line} {context}"
        trace = []
        if record.exc_info:
            trace.append(self.formatException(record.exc_info))
        if record.stack_info:
            trace.append(self.formatStack(record.stack_info))
        for text in trace:
            line += "".join(f"\n    {part}" for part in text.splitlines())
        return line


def configure(level: str, json_format: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings go through the same (JSON) formatter
    # nio logs request details at INFO/DEBUG; keep it to warnings so nothing sensitive leaks.
    logging.getLogger("nio").setLevel(logging.WARNING)
    logging.getLogger("peewee").setLevel(logging.WARNING)
