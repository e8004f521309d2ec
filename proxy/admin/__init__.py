"""The operator API under ``/admin/``: JSON only, never a secret in a response.

Access (``guard.py``): with ``admin.token`` (or ``SIDESTEP_ADMIN_TOKEN``) set, a matching
``Authorization: Bearer`` header is required (constant-time compare); without a token the API
answers only connections from loopback (checked by the gateway's middleware); a web console
session (``console_auth``) stands in for the token. Each module here adds its own routes.
"""

from __future__ import annotations

from aiohttp import web

from proxy.admin import config_view, events, guard, sessions, status, traffic
from proxy.admin.console_auth import CONSOLE_SESSIONS, ConsoleSessions
from proxy.admin.last_error import LastErrors
from proxy.state.gateway import GATEWAY


def add_admin_routes(app: web.Application) -> None:
    gw = app[GATEWAY]
    app[status.LAST_ERRORS] = errors = LastErrors(gw.fleet)
    gw.events.subscribe(errors)
    app.router.add_routes(status.routes)
    app.router.add_routes(sessions.routes)
    app.router.add_routes(config_view.routes)
    traffic.install(app)
    app[CONSOLE_SESSIONS] = ConsoleSessions()
    events.install(app)


__all__ = ["add_admin_routes", "guard"]
