"""The web console in a real headless Chromium against a real gateway on loopback: what a
person sees and can do at /ui (targets, the live feed and its explain view, sessions and git,
sign-in) and that a page of another site can change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.cli.demo import demo_config
from proxy.cli.simulator import DEMO_BEHAVIOURS, start_simulators
from proxy.http.app import make_app
from tests.clock import FakeClock
from tests.conftest import Running, target
from tests.fakes import error
from tests.proxy.file_gateway import start_from_file, write_config
from tests.proxy.test_git_isolation import (
    branch,
    git_config,
    isolated_home,  # noqa: F401  (autouse fixture: an empty HOME for every git call)
    make_repo,
    start,
)

pw = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
expect = pw.expect

ADMIN_TOKEN = "console-admin-token-5d1e8b"
UPSTREAM_KEY = "sk-a-upstream-key-0001"
USER: Any = [{"role": "user", "content": "hi"}]
WAIT_MS = 5000


def rate_limited() -> Any:
    return error(429, "Rate limit reached", "requests", "rate_limit_exceeded")


class Console:
    """One browser tab on a gateway's /ui, failing the test on any script error."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def row(self, target_id: str) -> Any:
        return self.page.locator(f'tr[data-target="{target_id}"]')

    async def confirm(self, button: Any) -> None:
        """Press a button that asks first, and confirm."""
        await button.click()
        await expect(self.page.locator("#confirm")).to_be_visible()
        await self.page.locator("#confirm-ok").click()

    async def post(self, path: str, headers: dict[str, str] | None = None) -> int:
        """The status of a POST made by the page's own origin (cookies included)."""
        status: int = await self.page.evaluate(
            """([path, headers]) => fetch(path, {method: "POST", body: "{}",
                 headers: {"Content-Type": "application/json", ...headers}}).then(r => r.status)""",
            [path, headers or {}],
        )
        return status


@pytest.fixture
async def console(browser: Any) -> AsyncIterator[Any]:
    """Opens /ui of a running gateway in a new browser context (own cookies)."""
    opened: list[Console] = []

    async def open_(base: str, *, width: int = 1280, signed_in: bool = True, **kw: Any) -> Console:
        context = await browser.new_context(viewport={"width": width, "height": 900}, **kw)
        tab = Console(await context.new_page(), base)
        opened.append(tab)
        await tab.page.goto(base + "/ui")
        if signed_in:
            await expect(tab.page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
        return tab

    yield open_
    for tab in opened:
        assert tab.errors == [], tab.errors
        await tab.page.context.close()


async def admin_state(gw: Running, target_id: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.url("/admin/status"), headers=headers) as r,
    ):
        doc = await r.json()
    state: str = next(t["state"] for t in doc["targets"] if t["id"] == target_id)
    return state


async def test_the_page_shows_the_demo_targets_at_desktop_and_phone_width(
    aiohttp_server: Any, console: Any, output_dir: Path
) -> None:
    """The demo's three targets each have a row with a state and the requests made before
    the page opened are in the feed; the page fits 360 px without
    sideways scrolling; screenshots (light, dark, phone) go to tests/browser/output/."""
    sims = await start_simulators(DEMO_BEHAVIOURS)
    try:
        urls = {behaviour.name: url for behaviour, url, _ in sims}
        server = await aiohttp_server(make_app(demo_config(urls, 8787)))
        base = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                body = {"model": "demo-model", "messages": USER}
                async with http.post(base + "/v1/chat/completions", json=body) as r:
                    assert r.status == 200
        tab = await console(base)
        for name in urls:
            await expect(tab.row(name).locator(".badge")).to_be_visible()
        await expect(tab.page.locator("#feed tbody tr")).to_have_count(3)  # from before
        await tab.page.screenshot(path=output_dir / "console-desktop.png", full_page=True)
        dark = await console(base, color_scheme="dark")
        await dark.page.screenshot(path=output_dir / "console-desktop-dark.png")
        phone = await console(base, width=360)
        await expect(phone.row("steady")).to_be_visible()
        overflow = await phone.page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 360
        await phone.page.screenshot(path=output_dir / "console-phone.png", full_page=True)
    finally:
        for _, _, runner in sims:
            await runner.cleanup()


async def test_a_429_shows_a_cooldown_with_its_countdown_and_reason(
    upstream: Any, gateway: Any, console: Any, sdk: Any, clock: FakeClock
) -> None:
    """After a scripted 429 the target reads "cooling down" with the reason and a countdown of
    the seconds left, which follows the gateway's clock."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway(
        [target(a, priority=10), target(b)],
        routing={"retries_per_target": 0},
        cooldown={"rate_limited_s": 30, "jitter": [0, 0]},
    )
    tab = await console(gw.url("").rstrip("/"))
    await expect(tab.row("a").locator(".badge")).to_have_text("serving")
    a.queue(rate_limited())
    await sdk(gw).chat.completions.create(model="m", messages=USER)
    row = tab.row("a")
    await expect(row.locator(".badge")).to_have_text("cooling down", timeout=WAIT_MS)
    await expect(row.locator(".reason")).to_have_text("reason: rate_limited")
    await expect(row.locator(".countdown")).to_have_text(re.compile(r"^(29|30) s$"))
    clock.advance(20)  # the next poll of /admin/status brings the gateway's time
    await expect(row.locator(".countdown")).to_have_text(re.compile(r"^(9|10) s$"), timeout=WAIT_MS)


async def test_pause_and_resume_from_the_page_with_mouse_and_keyboard(
    upstream: Any, gateway: Any, console: Any
) -> None:
    """Pause (asked, confirmed) shows "paused" in the page and in /admin/status; Escape on the
    question does nothing; resume, by keyboard alone, brings "serving" back."""
    gw = await gateway([target(await upstream("a"))])
    tab = await console(gw.url("").rstrip("/"))
    row = tab.row("a")
    await tab.confirm(row.locator('button[data-action="pause"]'))
    await expect(row.locator(".badge")).to_have_text("paused", timeout=WAIT_MS)
    await expect(tab.page.locator("#toast")).to_contain_text("a: pause done")
    assert await admin_state(gw, "a") == "paused"
    await row.locator('button[data-action="disable"]').focus()
    await tab.page.keyboard.press("Enter")
    await expect(tab.page.locator("#confirm")).to_be_visible()
    await tab.page.keyboard.press("Escape")
    await expect(tab.page.locator("#confirm")).to_be_hidden()
    assert await admin_state(gw, "a") == "paused"
    await row.locator('button[data-action="resume"]').focus()
    await tab.page.keyboard.press("Enter")
    await expect(tab.page.locator("#confirm-ok")).to_be_focused()
    await tab.page.keyboard.press("Enter")
    await expect(row.locator(".badge")).to_have_text("serving", timeout=WAIT_MS)
    assert await admin_state(gw, "a") == "ok"


async def test_a_failover_appears_in_the_feed_within_a_second_and_explains_both_attempts(
    upstream: Any, gateway: Any, console: Any, sdk: Any
) -> None:
    """A request that failed over a -> b is in the live feed within a second of finishing;
    its explain view lists both attempts (lane, failure class) and the routing decisions."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=10), target(b)], routing={"retries_per_target": 0})
    tab = await console(gw.url("").rstrip("/"))
    a.queue(rate_limited())
    await sdk(gw).chat.completions.create(model="m", messages=USER)
    first = tab.page.locator("#feed tbody tr").first
    await expect(first).to_contain_text("a → b", timeout=1000)
    await first.locator("button").click()
    attempts = tab.page.locator("#explain .attempts tbody tr")
    await expect(attempts).to_have_count(2, timeout=WAIT_MS)
    await expect(attempts.nth(0)).to_contain_text("a#0:m")
    await expect(attempts.nth(0)).to_contain_text("rate_limited")
    await expect(attempts.nth(1)).to_contain_text("b#0:m")
    await expect(attempts.nth(1)).to_contain_text("ok")
    decisions = tab.page.locator("#explain .decisions > li")
    await expect(decisions).to_have_count(2)
    await expect(decisions.nth(1)).to_contain_text("a#0 rejected: failed_this_request")


async def test_two_failovers_show_a_lineage_and_rollback_moves_the_branch(
    upstream: Any, gateway: Any, console: Any, tmp_path: Path
) -> None:
    """With git on, a -> b -> c shows the lineage dev -> dev-b -> dev-b-c; the page's Roll back
    (confirmed) moves the repository's HEAD back to dev-b and the page says so."""
    repo = make_repo(tmp_path / "repo")
    s = await start(upstream, gateway, ("a", "b", "c"), git=git_config(repo))
    await s.failover("a")
    await s.idle()
    await s.failover("b")
    await s.idle()
    tab = await console(s.gw.url("").rstrip("/"))
    card = tab.page.locator('[data-session="default"]')
    await expect(card.locator(".tree code")).to_have_text(["dev", "dev-b", "dev-b-c"])
    await expect(card.locator(".branch")).to_have_text("dev-b-c")
    await tab.confirm(card.locator('button[data-action="rollback"]'))
    await expect(tab.page.locator("#toast")).to_contain_text("rollback: rolled_back")
    await expect(card.locator(".branch")).to_have_text("dev-b", timeout=WAIT_MS)
    assert branch(repo) == "dev-b"


async def test_with_a_token_the_page_asks_for_it_and_refuses_changes_without_it(
    upstream: Any, gateway: Any, console: Any
) -> None:
    """With admin.token the page shows the sign-in and state-changing calls are refused; a
    wrong token is told so; after signing in a POST without the CSRF token is 403 while the
    page's own buttons work; the cookie is HttpOnly and SameSite=Strict; and no secret ever
    reaches the page (responses, DOM, storage)."""
    up = await upstream("a")
    gw = await gateway(
        [target(up, api_key=UPSTREAM_KEY)],
        admin={"token": ADMIN_TOKEN},
        auth={"client_keys": ["console-client-key-77"]},
    )
    tab = await console(gw.url("").rstrip("/"), signed_in=False)
    responses: list[Any] = []
    tab.page.on("response", lambda r: responses.append(r))
    await expect(tab.page.locator("#login")).to_be_visible()
    await expect(tab.page.locator("#app")).to_be_hidden()
    assert await tab.post("/admin/targets/a/pause") == 401
    await tab.page.locator("#token").fill("not-the-token")
    await tab.page.locator("#token").press("Enter")
    await expect(tab.page.locator("#login-error")).to_have_text("wrong admin token")
    await tab.page.locator("#token").fill(ADMIN_TOKEN)
    await tab.page.locator("#token").press("Enter")
    await expect(tab.page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
    assert await tab.post("/admin/targets/a/pause") == 403  # the cookie alone is not enough
    assert await admin_state(gw, "a", ADMIN_TOKEN) == "ok"
    await tab.confirm(tab.row("a").locator('button[data-action="pause"]'))
    await expect(tab.row("a").locator(".badge")).to_have_text("paused", timeout=WAIT_MS)
    (cookie,) = await tab.page.context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert await tab.page.evaluate("document.cookie") == ""
    await tab.page.locator("#config summary").click()
    await expect(tab.page.locator("#config-json")).to_contain_text("sk-…0001")
    storage = await tab.page.evaluate("JSON.stringify([localStorage, sessionStorage])")
    seen = [await tab.page.content(), storage]
    for response in responses:
        if "event-stream" not in (response.headers.get("content-type") or ""):
            seen.append((await response.body()).decode("utf-8", "replace"))
    assert len(seen) > 5
    for text in seen:
        for secret in (ADMIN_TOKEN, UPSTREAM_KEY, "console-client-key-77"):
            assert secret not in text


EVIL_PAGE = """<!doctype html><title>evil</title><script>
const gw = "%s";
Promise.allSettled([
  fetch(gw + "/admin/targets/a/pause", {method: "POST", mode: "no-cors",
        credentials: "include", headers: {"Content-Type": "text/plain"}, body: "{}"}),
  fetch(gw + "/admin/targets/a/disable", {method: "POST", credentials: "include",
        headers: {"Content-Type": "application/json"}, body: "{}"}),
]).then(() => { document.title = "done"; });
</script>"""


async def test_a_cross_site_page_cannot_change_anything(
    upstream: Any, gateway: Any, console: Any, aiohttp_server: Any
) -> None:
    """A page on another site, in the browser of a signed-in operator, POSTs to the admin API
    (a simple no-cors POST and a JSON one): the gateway refuses it (403) and nothing changes."""
    gw = await gateway([target(await upstream("a"))], admin={"token": ADMIN_TOKEN})
    base = gw.url("").rstrip("/")
    tab = await console(base, signed_in=False)
    await tab.page.locator("#token").fill(ADMIN_TOKEN)
    await tab.page.locator("#token").press("Enter")
    await expect(tab.page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)

    async def evil(request: web.Request) -> web.Response:
        return web.Response(text=EVIL_PAGE % base, content_type="text/html")

    evil_app = web.Application()
    evil_app.router.add_get("/", evil)
    evil_server = await aiohttp_server(evil_app)
    statuses: dict[str, int] = {}
    page = await tab.page.context.new_page()
    page.on("response", lambda r: statuses.__setitem__(f"{r.request.method} {r.url}", r.status))
    await page.goto(f"http://evil.test:{evil_server.port}/")
    await expect(page).to_have_title("done", timeout=WAIT_MS)
    assert statuses[f"POST {base}/admin/targets/a/pause"] == 403
    assert f"POST {base}/admin/targets/a/disable" not in statuses  # its preflight was refused
    await page.close()
    assert await admin_state(gw, "a", ADMIN_TOKEN) == "ok"


async def test_reload_shows_validation_problems_with_their_paths(
    upstream: Any, aiohttp_server: Any, clock: FakeClock, console: Any, tmp_path: Path
) -> None:
    """The Config section names the file; a Reload of a broken file lists each problem with
    its path and keeps the running config; a good file reloads with "ok"."""
    up = await upstream("a")
    path = tmp_path / "sidestep.yaml"
    write_config(path, [target(up, api_key=UPSTREAM_KEY)])
    gw = await start_from_file(aiohttp_server, clock, path)
    tab = await console(gw.url("").rstrip("/"))
    await expect(tab.row("a")).to_contain_text("sk-…0001")
    await expect(tab.page.locator("#config-meta")).to_contain_text(f"from {path}")
    write_config(path, [target(up, base_url="not a url", priority="high")])
    await tab.confirm(tab.page.locator("#reload"))
    problems = tab.page.locator("#reload-result .problems li")
    await expect(problems).to_have_count(2, timeout=WAIT_MS)
    await expect(problems.nth(0)).to_contain_text("targets[0].")
    await expect(tab.page.locator("#config-meta")).to_contain_text("error (admin)")
    write_config(path, [target(up), target(await upstream("b"))])
    await tab.confirm(tab.page.locator("#reload"))
    await expect(tab.page.locator("#reload-result")).to_have_text("reload: ok", timeout=WAIT_MS)
    await expect(tab.row("b")).to_be_visible(timeout=WAIT_MS)


async def test_a_pending_decision_is_answered_from_the_page(
    upstream: Any, gateway: Any, console: Any, tmp_path: Path
) -> None:
    """Tests that fail before a switch open a decision; the page lists it with the switch, and
    its Isolate (confirmed) creates the branch and clears it from the list."""
    repo = make_repo(tmp_path / "repo")
    tests = {"command": "echo 2 tests failed; exit 1", "block_on_fail": True}
    s = await start(upstream, gateway, git=git_config(repo, tests=tests))
    await s.failover()
    await s.idle()
    assert branch(repo) == "dev"
    tab = await console(s.gw.url("").rstrip("/"))
    decision = tab.page.locator("[data-decision]")
    await expect(decision).to_contain_text("tests failed before a switch a → b")
    await tab.confirm(decision.locator("button", has_text="Isolate"))
    await expect(tab.page.locator("#toast")).to_contain_text("(dev → dev-b)", timeout=WAIT_MS)
    await expect(decision).to_have_count(0, timeout=WAIT_MS)
    assert branch(repo) == "dev-b"
