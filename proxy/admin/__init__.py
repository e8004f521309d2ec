"""The operator API under ``/admin/``: JSON only, never a secret in a response.

Access (``guard.py``): with ``admin.token`` (or ``SIDESTEP_ADMIN_TOKEN``) set, a matching
``Authorization: Bearer`` header is required (constant-time compare); without a token the API
answers only connections from loopback (checked by the gateway's middleware). Each module here
adds its own routes.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin import events, guard, sessions, status


def add_admin_routes(app: web.Application) -> None:
    app.router.add_routes(status.routes)
    app.router.add_routes(sessions.routes)
    events.install(app)


__all__ = ["add_admin_routes", "guard"]
