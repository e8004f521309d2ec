"""Trimming what a continuation repeats of the text the client already has.

Models asked to continue a cut answer often repeat its last words, or start the whole answer
over. ``OverlapTrimmer`` holds continuation text back while it could still be such a repeat,
then drops the repeated part and releases the rest.
"""

from __future__ import annotations

__all__ = ["OverlapTrimmer"]


class OverlapTrimmer:
    """Holds back continuation text while it may repeat what the client already has.

    Heuristic. Candidates for a repeat are (1) every suffix of ``confirmed_tail`` that starts
    at a word boundary (anywhere but between two word characters) and is at least
    ``min_overlap`` characters long, and (2) the whole confirmed text, any length (the model
    restarted its answer). ``whole`` is the complete confirmed text; when omitted,
    ``confirmed_tail`` is taken to be all of it; ``confirmed_tail`` must be a suffix of it.

    Continuation text is held while it is a proper prefix of some candidate. As soon as none
    is, the longest candidate the held text starts with is dropped and the rest released;
    after that every delta passes through unchanged. The hold therefore never exceeds
    ``max(len(whole), len(confirmed_tail))`` characters plus the last delta. ``finish()``
    releases whatever is held at end of stream, dropping a fully matched candidate.

    Limits. A legitimate continuation that happens to start with the last ``min_overlap`` or
    more characters of the confirmed text from a word boundary, or with the whole confirmed
    text (likeliest when that is only a few characters), is trimmed wrongly. Not caught:
    repeats shorter than ``min_overlap`` (including a repeat of a cut word, e.g. ``"bro"`` +
    ``"brown"``), repeats starting mid-word, text without word boundaries (e.g. CJK) except
    whole restarts, and restarts that differ in any character (whitespace included).
    """

    __slots__ = ("_alive", "_best", "_done", "_held", "_held_len", "_min", "_tail", "_whole")

    def __init__(
        self, confirmed_tail: str, *, min_overlap: int = 8, whole: str | None = None
    ) -> None:
        self._tail = confirmed_tail
        self._whole = confirmed_tail if whole is None else whole
        self._min = max(1, min_overlap)
        self._alive: list[tuple[str, int]] | None = None  # (source, start): source[start:]
        self._best = 0  # length of the longest candidate fully matched so far
        self._held: list[str] = []
        self._held_len = 0
        self._done = False

    @property
    def trimmed(self) -> int:
        """Characters dropped as a repeat (0 until the decision is made)."""
        return self._best if self._done else 0

    def feed(self, s: str) -> str:
        """Take the next continuation delta; return the text that is safe to emit now."""
        if self._done:
            return s
        if not s:
            return ""
        if self._alive is None:
            self._alive = self._candidates(s[0])
        offset = self._held_len
        self._held.append(s)
        self._held_len += len(s)
        alive: list[tuple[str, int]] = []
        for source, start in self._alive:
            need = len(source) - start - offset  # > 0: candidates still alive are not complete
            if source.startswith(s[:need], start + offset):
                if len(s) >= need:
                    self._best = max(self._best, len(source) - start)
                else:
                    alive.append((source, start))
        self._alive = alive
        return "" if alive else self._release()

    def finish(self) -> str:
        """End of the continuation: return whatever is still held, minus a matched repeat."""
        return "" if self._done else self._release()

    def _release(self) -> str:
        self._done = True
        text = "".join(self._held)
        self._held = []
        self._held_len = 0
        return text[self._best :]

    def _candidates(self, first: str) -> list[tuple[str, int]]:
        """Candidate repeats whose first character is ``first``."""
        tail, whole = self._tail, self._whole
        found = [(whole, 0)] if whole.startswith(first) else []
        # The tail's own start is a candidate only when it is not the whole text (already
        # listed) and the character before it is known.
        lo = 0 if len(tail) < len(whole) else 1
        hi = len(tail) - self._min + 1  # candidates shorter than min_overlap are excluded
        j = tail.find(first, lo, hi) if hi > lo else -1
        while j >= 0:
            prev = tail[j - 1] if j else whole[len(whole) - len(tail) - 1]
            if not (_is_word(prev) and _is_word(tail[j])):  # never from inside a word
                found.append((tail, j))
            j = tail.find(first, j + 1, hi)
        return found


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
