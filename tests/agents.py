"""Requests shaped like the ones the two coding agents our users run send (written here from
their observed traffic, not copied): a Claude Code turn for the Messages API and a Codex CLI
turn for the Responses API. Deterministic, so a test can compare what an upstream received."""

from __future__ import annotations

from typing import Any

_TOOL_NAMES = (
    "Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "NotebookRead",
    "NotebookEdit", "WebFetch", "WebSearch", "TodoRead", "TodoWrite", "Task", "ExitPlanMode",
    "BashOutput", "KillShell", "SlashCommand", "AskUser", "ListMcpResources",
    "ReadMcpResource", "Skill", "Agent",
)  # fmt: skip


def _schema(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": f"The file {name} works on"},
            "content": {"type": "string", "description": "What to write or look for"},
            "limit": {"type": "integer", "minimum": 1},
            "flags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["path"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }


def _system_text(kib: int) -> str:
    paragraph = (
        "You are an interactive command-line coding assistant. Use the tools available to "
        "you to read, search and change the user's repository; prefer small, reviewable "
        "edits; run the project's tests after each change and report what they printed. "
    )
    return (paragraph * (kib * 1024 // len(paragraph) + 1))[: kib * 1024]


def claude_code_request(model: str = "claude-sonnet-4-5", *, stream: bool = True) -> dict[str, Any]:
    """A Claude Code turn: ~100 KB of system blocks with cache_control, 24 tools, thinking,
    a tool_use / tool_result round in the history, 64k max_tokens, metadata and
    context_management."""
    return {
        "model": model,
        "max_tokens": 64000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code, a coding agent."},
            {"type": "text", "text": _system_text(96), "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Why does the build fail?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me read the build script."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Read",
                        "input": {"path": "Makefile"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01",
                        "content": [{"type": "text", "text": "all:\n\tcc -o app main.c\n"}],
                    },
                    {
                        "type": "text",
                        "text": "Fix it, please.",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
        ],
        "tools": [
            {"name": name, "description": f"The {name} tool.", "input_schema": _schema(name)}
            for name in _TOOL_NAMES
        ],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": '{"device_id":"d-1","session_id":"s-1"}'},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "temperature": 1,
    }


CLAUDE_CODE_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
    "context-management-2025-06-27",
    "x-app": "cli",
    "X-Claude-Code-Session-Id": "2f6c1f0e-claude-code-session",
}
