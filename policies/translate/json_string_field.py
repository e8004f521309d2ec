"""The decoded value of one string field of a JSON object, streamed out while the object's
text arrives in arbitrary pieces (a tool call's arguments, fragment by fragment).

A freeform (``custom``) tool offered to a chat target as a function taking
``{"input": "<text>"}`` is called with JSON text; the Responses client expects the raw
``input`` text, streamed. ``StringFieldStream`` yields it piece by piece, each piece decoded
(escapes, ``\\uXXXX`` and surrogate pairs, even split across fragments), in O(piece) per
fragment. It is a best-effort preview: the caller takes the final value from the whole
arguments once complete, and the pieces equal it whenever the field is the object's first
string value named ``key`` (what models produce).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

_SPECIAL: Final = re.compile(r'[\\"]')
_HEX4: Final = re.compile(r"[0-9a-fA-F]{4}")
_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_MAX_SEEK: Final = 4096  # characters to look through for the field before giving up
_HIGH: Final = range(0xD800, 0xDC00)
_LOW: Final = range(0xDC00, 0xE000)


class _State(Enum):
    SEEK = "seek"  # before the field's opening quote
    VALUE = "value"  # inside the string value
    DONE = "done"  # past the closing quote, or gave up


class StringFieldStream:
    """Feed JSON text pieces; get the decoded characters of field ``key`` they complete."""

    __slots__ = ("_open", "_seen", "_state", "_tail")

    def __init__(self, key: str) -> None:
        self._open = re.compile(r'"' + re.escape(key) + r'"\s*:\s*"')
        self._state = _State.SEEK
        self._seen = ""  # text before the value started (bounded by _MAX_SEEK)
        self._tail = ""  # an escape sequence split across pieces

    def feed(self, piece: str) -> str:
        """The decoded value characters ``piece`` completes ('' if none)."""
        if self._state is _State.SEEK:
            self._seen += piece
            found = self._open.search(self._seen)
            if found is None:
                if len(self._seen) > _MAX_SEEK:
                    self._state = _State.DONE
                return ""
            piece, self._seen, self._state = self._seen[found.end() :], "", _State.VALUE
        if self._state is not _State.VALUE:
            return ""
        return self._decode(self._tail + piece)

    def _decode(self, text: str) -> str:
        self._tail = ""
        out: list[str] = []
        at = 0
        while (special := _SPECIAL.search(text, at)) is not None:
            start = special.start()
            out.append(text[at:start])
            if text[start] == '"':
                self._state = _State.DONE
                return "".join(out)
            step = _escape(text, start, out)
            if step == 0:  # the escape continues in the next piece
                self._tail = text[start:]
                return "".join(out)
            at = start + step
        out.append(text[at:])
        return "".join(out)


def _escape(text: str, start: int, out: list[str]) -> int:
    """Decode the escape at ``text[start]`` into ``out``; its length, or 0 if incomplete."""
    if start + 1 >= len(text):
        return 0
    kind = text[start + 1]
    if kind != "u":
        out.append(_ESCAPES.get(kind, kind))
        return 2
    code = _hex(text, start + 2)
    if code is None:
        return 0 if len(text) < start + 6 else _bad(out, 6)
    if code not in _HIGH:
        out.append("\ufffd" if code in _LOW else chr(code))
        return 6
    follows = text[start + 6 : start + 8]
    if not "\\u".startswith(follows):  # no low surrogate escape follows
        return _bad(out, 6)
    if len(text) < start + 12:
        return 0
    low = _hex(text, start + 8)
    if low is None or low not in _LOW:
        return _bad(out, 6)
    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
    return 12


def _hex(text: str, at: int) -> int | None:
    found = _HEX4.match(text, at)
    return int(found.group(), 16) if found else None


def _bad(out: list[str], length: int) -> int:
    """A malformed or lone-surrogate escape: shown as U+FFFD (a lone surrogate cannot be
    encoded as UTF-8 JSON)."""
    out.append("\ufffd")
    return length
