"""The operator API under ``/admin/``: JSON only, never a secret in a response.

Access (``guard.py``): with ``admin.token`` (or ``SIDESTEP_ADMIN_TOKEN``) set, a matching
``Authorization: Bearer`` header is required (constant-time compare); without a token the API
answers only connections from loopback. Each module here adds its own routes.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin import events, guard, sessions, status
from proxy.admin.last_error import LastErrors
from proxy.state.gateway import GATEWAY


def add_admin_routes(app: web.Application) -> None:
    gw = app[GATEWAY]
    app[status.LAST_ERRORS] = errors = LastErrors(gw.fleet)
    gw.events.subscribe(errors)
    app.router.add_routes(status.routes)
    app.router.add_routes(sessions.routes)
    events.install(app)
    app.middlewares.append(guard.admin_guard)


__all__ = ["add_admin_routes", "guard"]
