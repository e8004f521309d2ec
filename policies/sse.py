"""Server-sent events as a pure decoder: whole raw events out of a byte stream, fields out of one.

Owns the byte-level view of an upstream ``text/event-stream`` (WHATWG HTML §9.2.6):

- ``FrameSplitter`` cuts arbitrary network chunks into complete raw events, byte-exact, so the
  relay can forward an event only once all of it has arrived (a client never sees half an
  event when the upstream dies mid-frame).
- ``parse_event`` decodes one raw event into its fields.
- ``is_comment`` tells a comment-only event (``: ping``), the one kind of data-less event a
  client may still be sent.
- ``data_payload`` is the relay's fast path: the bytes after ``data:`` of a one-line event,
  without decoding the event, ready for ``orjson.loads``.

Line terminators are ``\\r\\n``, ``\\r`` or ``\\n``, mixed freely; an event ends at a blank line.
Nothing here performs I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_MAX_EVENT_BYTES: Final = 16 * 2**20

# A blank line is a line terminator directly followed by another. Both groups are atomic so
# "\r\n" is always read as one terminator, never as "\r" followed by a second terminator "\n".
_BOUNDARY: Final = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_LINE: Final = re.compile(r"\r\n|\r|\n")
# A match of _BOUNDARY is at most 4 bytes, so a match that needs bytes not yet received starts
# within the last 3 bytes of the buffer; everything before was settled by earlier scans.
_RESCAN: Final = 3
_CR: Final = 0x0D
_LF: Final = 0x0A


class FrameSplitter:
    """Split an SSE byte stream into complete raw events, scanning each byte about once.

    ``feed`` returns the events completed by a chunk, each exactly as received including its
    terminating blank line, so concatenating every returned event, then ``close()``'s events,
    then ``flush()``, reproduces the input. The result does not depend on where the stream was
    split into chunks.

    One subtlety makes that exact: when the buffer ends in a CR that completes a blank line,
    the next byte may be an LF belonging to the same CRLF, so that event is held until the next
    byte arrives (or ``close()``). Only streams whose chunks end between ``\\r`` and ``\\n`` of
    the final blank line, or that use bare-CR line ends, ever wait.

    Size limit: if one event (complete or still partial) exceeds ``max_event_bytes``, the
    splitter stops: ``overflowed`` becomes True, the buffer is dropped, and every later
    ``feed`` returns ``[]``. Events completed before the oversized one are still returned.
    This is a state for the caller to act on (treat the stream as malformed), not an exception.
    """

    __slots__ = ("_buf", "_lf_only", "_max", "_scan", "_scanned", "overflowed")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes <= 0:
            raise ValueError("max_event_bytes must be positive")
        self._buf = bytearray()
        self._max = max_event_bytes
        self._scan = 0  # buffer offset where the next boundary search starts
        # True once an event exceeded ``max_event_bytes``; the splitter then ignores input.
        # A plain attribute, not a property: the relay reads it once per chunk.
        self.overflowed = False
        self._scanned = 0
        self._lf_only = True  # no CR was buffered since the buffer was last empty

    @property
    def pending(self) -> int:
        """Bytes buffered that were not yet returned as events."""
        return len(self._buf)

    @property
    def bytes_scanned(self) -> int:
        """Total bytes searched for boundaries so far: at most input bytes + 3 per feed."""
        return self._scanned

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return the raw events it completed, in order (often ``[]``)."""
        if self.overflowed:
            return []
        if self._lf_only and _CR not in chunk:
            return self._feed_lf(chunk)
        self._lf_only = False
        buf = self._buf
        buf += chunk
        self._scanned += len(buf) - self._scan
        events: list[bytes] = []
        start = 0
        resume = -1
        too_big = False
        with memoryview(buf) as view:
            for match in _BOUNDARY.finditer(buf, self._scan):
                end = match.end()
                if end == len(buf) and buf[-1] == _CR:
                    resume = match.start()  # may still grow by an LF: decide on the next feed
                    break
                if end - start > self._max:
                    too_big = True
                    break
                events.append(view[start:end].tobytes())
                start = end
        if too_big or len(buf) - start > self._max:
            return self._overflow(events)
        if resume < 0:
            resume = max(start, len(buf) - _RESCAN)
        del buf[:start]
        self._scan = resume - start
        self._lf_only = not buf
        return events

    def _feed_lf(self, chunk: bytes) -> list[bytes]:
        """``feed`` when neither the buffer nor ``chunk`` holds a CR, the usual case: the only
        boundary is then ``\\n\\n``, found with ``bytes.find`` rather than the regex, and no
        blank line has to wait for its next byte. Events are slices of ``chunk``, except the
        one that began in the buffer."""
        buf = self._buf
        events: list[bytes] = []
        start = 0
        self._scanned += len(chunk)
        if buf:  # finish the pending event first: its boundary may straddle the two
            self._scanned += 1
            if buf[-1] == _LF and chunk.startswith(b"\n"):
                start = 1
            else:
                start = chunk.find(b"\n\n") + 2
                if start < 2:
                    return self._hold(chunk)
            if len(buf) + start > self._max:
                return self._overflow(events)
            buf += chunk[:start]
            events.append(bytes(buf))
            buf.clear()
            self._scan = 0
        find = chunk.find
        end = find(b"\n\n", start) + 2
        while end > 1:
            if end - start > self._max:
                return self._overflow(events)
            events.append(chunk[start:end])
            start = end
            end = find(b"\n\n", start) + 2
        if start < len(chunk):
            self._hold(chunk[start:])  # may overflow; the events before it still stand
        return events

    def _hold(self, partial: bytes) -> list[bytes]:
        """Buffer the start of an event (CR-free) until its end arrives."""
        buf = self._buf
        buf += partial
        if len(buf) > self._max:
            return self._overflow([])
        self._scan = max(0, len(buf) - _RESCAN)
        return []

    def close(self) -> list[bytes]:
        """End of stream: return the last event if it was held for CR/LF disambiguation.

        Returns ``[]`` when there is no such event. Whatever stays buffered afterwards is an
        incomplete event, available from ``flush()``.
        """
        buf = self._buf
        if self.overflowed or not buf or buf[-1] != _CR:
            return []
        match = _BOUNDARY.search(buf, self._scan)
        if match is None or match.end() != len(buf):
            return []
        event = bytes(buf)
        buf.clear()
        self._scan = 0
        self._lf_only = True
        return [event]

    def flush(self) -> bytes:
        """Return and forget every buffered byte not returned as an event.

        At end of stream, after ``close()``, this is an event the upstream never finished
        (``b""`` after a clean end); it must not be forwarded as if complete.
        """
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        self._lf_only = True
        return rest

    def _overflow(self, events: list[bytes]) -> list[bytes]:
        self.overflowed = True
        self._buf.clear()
        self._scan = 0
        return events


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    ``event`` is ``"message"`` when the event named no type. ``id`` and ``retry`` are None
    unless this event carried a valid one. ``is_valid`` is False when the raw bytes were not
    valid UTF-8; the fields were then decoded with U+FFFD replacements (what a browser would
    show), and a strict caller should count the event as malformed.
    """

    event: str
    data: str
    id: str | None
    retry: int | None
    is_valid: bool = True


def parse_event(raw: bytes) -> SSEEvent | None:
    """Decode one raw event per the WHATWG rules; None when there is nothing to dispatch.

    Lines are ``field:value`` with one leading space of the value removed, or a bare
    ``field`` with an empty value; lines starting with ``:`` are comments. ``data`` lines are
    joined with ``\\n``; an ``id`` containing NUL and a non-digit ``retry`` are ignored;
    unknown fields are ignored. Decoding stops at the first blank line after some data. An
    event without any ``data`` line (comments only, empty, or only ``event``/``id``/``retry``)
    returns None, as a browser would dispatch nothing. A missing final blank line is tolerated.
    """
    text, valid = _decode(raw)
    event_type = ""
    data: list[str] = []
    event_id: str | None = None
    retry: int | None = None
    for line in _LINE.split(text):
        if not line:
            if data:
                break
            event_type = ""  # a blank line with no data dispatches nothing and resets the type
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    if not data:
        return None
    return SSEEvent(event_type or "message", "\n".join(data), event_id, retry, valid)


def data_payload(raw: bytes) -> bytes | None:
    """Return the event's data as bytes, or None when it has no ``data`` line.

    Fast path for the common ``data: <json>`` event with a single line: a slice of ``raw``,
    nothing decoded and not checked for UTF-8 validity (``orjson.loads`` rejects invalid
    UTF-8). Any other shape (several lines, comments, an ``event:`` line) goes through
    ``parse_event`` and returns its data UTF-8 encoded, or None if ``raw`` is not valid UTF-8.
    For a valid event both paths agree with ``parse_event(raw).data``.
    """
    if raw.startswith(b"data:"):
        end = len(raw) - 2
        if raw.find(b"\n") != end or raw[-1] != _LF or _CR in raw:  # not ``data: x\n\n``
            end = _single_line_end(raw)
        if end >= 0:
            return raw[6 if raw.startswith(b" ", 5) else 5 : end]
    event = parse_event(raw)
    if event is None or not event.is_valid:
        return None
    return event.data.encode()


def is_comment(raw: bytes) -> bool:
    """Whether ``raw`` is a valid UTF-8 event made only of comment lines (``: ping``) and its
    terminators: a keep-alive a client SDK skips. Anything else without data is not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = [line for line in _LINE.split(text) if line]
    return bool(lines) and all(line.startswith(":") for line in lines)


def _decode(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text of ``raw`` and whether it was valid (else decoded with replacements)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _single_line_end(raw: bytes) -> int:
    """End offset of the first line if only line terminators follow it, else -1."""
    lf = raw.find(b"\n")
    cr = raw.find(b"\r", 0, lf if lf >= 0 else len(raw))
    end = cr if cr >= 0 else lf
    if end < 0:
        return len(raw)
    if len(raw) - end > 4 or raw[end:].strip(b"\r\n"):
        return -1
    return end
