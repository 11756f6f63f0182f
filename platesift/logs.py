"""Log lines that stay one line: untrusted text (task paths, server answers) may hold newlines
or terminal escapes; they are escaped before they reach a log line or an error line."""

from __future__ import annotations

import logging

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROLS = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in (*range(0x20), 0x7F, 0x85)
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """`text` with every control character (and Unicode line separator) escaped."""
    return text.translate(_CONTROLS)


class OneLineFormatter(logging.Formatter):
    """A Formatter whose message part is always one line (a traceback, if any, still follows
    on the lines after it, as it does everywhere)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


__all__ = ["OneLineFormatter", "one_line"]
