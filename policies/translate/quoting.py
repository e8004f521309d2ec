"""Client-supplied values quoted in error messages, kept short: an error names what it refers
to without echoing (possibly huge) input back."""

from __future__ import annotations

from typing import Final

MAX_SHOWN: Final = 60  # characters of a value an error message quotes


def shown(value: object) -> str:
    """``repr(value)``, cut to ``MAX_SHOWN`` characters with an ellipsis when longer."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"
