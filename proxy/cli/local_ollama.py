"""Finding a local Ollama on its default port, for zero-config and ``sidestep init``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

OLLAMA_DEFAULT_ROOT = "http://127.0.0.1:11434"
PROBE_TIMEOUT_S = 0.5


def probe_ollama(root: str = OLLAMA_DEFAULT_ROOT, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """The OpenAI-compatible base URL (``{root}/v1``) of the Ollama at ``root`` when it
    answers ``GET /api/version`` like Ollama within ``timeout_s``; else None. Never through
    ``HTTP(S)_PROXY``: the address is this machine."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(root.rstrip("/") + "/api/version", timeout=timeout_s) as resp:
            doc = json.loads(resp.read(4096))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("version"), str):
        return root.rstrip("/") + "/v1"
    return None
