"""The docs pages in a real browser: Debian's Chromium, headless, driven by Playwright, against a
rendered service on 127.0.0.1 with everything off and everything on.

Every request for another host is blocked and counted, and so is every Content-Security-Policy
violation and console error: /docs and /redoc must render from the service alone. "Try it out"
must answer `What is 2+2?`; with auth, Authorize must log in through /auth/token with a user
made by the project's CLI, refuse a wrong password in its dialog, and then send the token.
Screenshots of /docs go to `.results/` for a person to look at."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from baking import TEMPLATE_ROOT, BakedProject, Template
from serving import delete_redis_keys, prepare_user, served, service_env, uses_redis

RESULTS = TEMPLATE_ROOT / ".results"
SERVICE_HOST = "127.0.0.1"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
# No sandbox (CI runs as root), no GPU, and none of the browser's own traffic: updates, sync,
# first-run pages. Playwright adds --headless and the fresh profile directory.
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USERNAME, PASSWORD = "docs-reader", secrets.token_urlsafe(16)
QUESTION = "What is 2+2?"
# For any one step: a 2-core machine running other tests renders Swagger UI in a few seconds.
TIMEOUT_MS = 30_000

# Reports each violation to the test (a binding survives navigations; the page's own policy
# does not apply to what Playwright injects).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
    window.reportCspViolation(
        `${event.violatedDirective} blocked ${event.blockedURI || "inline"} on ${location.pathname}`
    );
});
"""


def find_chromium() -> str:
    """$CHROMIUM, or the first Chromium or Chrome on PATH; no browser is one clear failure."""
    candidates = [os.environ.get("CHROMIUM"), *map(shutil.which, CHROMIUM_NAMES)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        "no Chromium for the browser tests: install Debian's chromium package "
        "(apt-get install chromium), or set CHROMIUM to a Chromium or Chrome binary",
        pytrace=False,
    )


class Watch:
    """What the pages did that they must not: requests for other hosts (blocked), policy
    violations and console errors. `expected_error` excuses one kind of console error while a
    step provokes it."""

    def __init__(self, context: BrowserContext) -> None:
        self.outside: list[str] = []
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.expected_error: Callable[[ConsoleMessage], bool] | None = None
        context.route("**/*", self._route)
        context.expose_binding("reportCspViolation", lambda _, text: self.violations.append(text))
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("page", self._watch_page)

    def _route(self, route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == SERVICE_HOST:
            route.continue_()
        else:
            self.outside.append(request.url)
            route.abort("blockedbyclient")

    def _watch_page(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if self.expected_error and self.expected_error(message):
            return
        self.errors.append(f"{message.text} ({message.location.get('url')})")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step of the test: it fails with what the pages did wrong in it, if anything,
        whether or not its own checks passed."""
        try:
            yield
        except AssertionError as error:
            found = "\n".join(self.problems())
            raise AssertionError(f"{name}: {error}\n{found}".rstrip()) from None
        found = self.problems()
        assert not found, f"{name}: " + "\n".join(found)

    def problems(self) -> list[str]:
        """Everything seen since the last call, then forgotten."""
        found = [
            *(f"request for another host: {url}" for url in self.outside),
            *(f"CSP violation: {text}" for text in self.violations),
            *(f"console error: {text}" for text in self.errors),
        ]
        self.outside.clear()
        self.violations.clear()
        self.errors.clear()
        return found


@contextmanager
def browser(chromium: str, profile: Path) -> Iterator[tuple[Page, Watch]]:
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=BROWSER_ARGS
            )
        except Error as error:
            reason = str(error).strip().splitlines()[0]
            pytest.fail(f"Chromium ({chromium}) did not start: {reason}", pytrace=False)
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        try:
            watch = Watch(context)
            yield context.new_page(), watch
        finally:
            context.close()


# --- Swagger UI, as a person uses it --------------------------------------------------------


def operation(page: Page, method: str, path: str) -> Locator:
    summary = page.locator(f'.opblock-summary-path[data-path="{path}"]')
    return page.locator(f".opblock-{method}").filter(has=summary)


def try_it_out(page: Page, method: str, path: str, body: dict[str, Any] | None = None) -> str:
    """Opens the operation, sends it with "Try it out" and "Execute", and returns the response
    body as the page shows it, once the page shows a 200."""
    block = operation(page, method, path)
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    if body is not None:
        block.locator("textarea.body-param__text").fill(json.dumps(body))
    block.locator(".execute").click()
    response = block.locator(".live-responses-table tbody tr.response")
    expect(response.locator(".response-col_status")).to_have_text("200")
    return response.locator(".response-col_description pre").first.inner_text()


def log_in(page: Page, username: str, password: str) -> Locator:
    """Fills the Authorize dialog and submits it; returns the dialog, still open."""
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").fill(username)
    dialog.locator("#oauth_password").fill(password)
    dialog.locator(".auth-btn-wrapper .authorize").click()
    return dialog


def a_failed_login(message: ConsoleMessage) -> bool:
    """Chromium's own line for the refused login: the one error a wrong password causes."""
    return "status of 401" in message.text and message.location.get("url", "").endswith(
        "/auth/token"
    )


@pytest.mark.parametrize("everything", [False, True], ids=["none", "all"])
def test_docs_work_offline_in_a_browser(
    everything: bool, template: Template, bake: Callable[..., BakedProject], tmp_path: Path
) -> None:
    chromium = find_chromium()
    project = bake(**dict.fromkeys(template.toggles, everything))
    project.install()
    name = "all" if everything else "none"
    auth = bool(project.answers["use_auth"])
    env = service_env(project, tmp_path)
    if auth:
        prepare_user(project, env, USERNAME, PASSWORD)
    RESULTS.mkdir(exist_ok=True)
    try:
        with (
            served(project, env, tmp_path / "server.log") as base_url,
            browser(chromium, tmp_path / "profile") as (page, watch),
        ):
            with watch.step("/docs"):
                page.goto(f"{base_url}/docs")
                expect(operation(page, "post", "/ai/query")).to_be_visible()
                page.screenshot(path=RESULTS / f"docs-{name}.png", full_page=True)
            if auth:
                log_in_through_the_dialog(page, watch)
            with watch.step("Try it out"):
                ask_and_check_the_token(page, auth)
                operation(page, "post", "/ai/query").screenshot(
                    path=RESULTS / f"docs-{name}-query.png"
                )
            with watch.step("/redoc"):
                page.goto(f"{base_url}/redoc")
                expect(page.locator("h1")).to_contain_text(str(project.answers["project_name"]))
                expect(page.get_by_text("/ai/query").first).to_be_attached()
                page.screenshot(path=RESULTS / f"redoc-{name}.png")
    finally:
        if uses_redis(project):
            delete_redis_keys(project, env)


def log_in_through_the_dialog(page: Page, watch: Watch) -> None:
    """A wrong password first: a 401, shown in the dialog, and still logged out. Then the
    right one: logged in."""
    with watch.step("Authorize, wrong password"):
        watch.expected_error = a_failed_login
        with page.expect_response(re.compile(r"/auth/token$")) as refused:
            dialog = log_in(page, USERNAME, "not-the-password")
        assert refused.value.status == 401
        expect(dialog.locator(".errors")).to_contain_text("Unauthorized")
        expect(dialog.locator("button", has_text="Logout")).to_have_count(0)
        dialog.locator(".btn-done").click()
        watch.expected_error = None
    with watch.step("Authorize"):
        with page.expect_response(re.compile(r"/auth/token$")) as accepted:
            dialog = log_in(page, USERNAME, PASSWORD)
        assert accepted.value.status == 200
        expect(dialog.locator("button", has_text="Logout")).to_be_visible()
        dialog.locator(".btn-done").click()


def ask_and_check_the_token(page: Page, auth: bool) -> None:
    """`What is 2+2?` through "Try it out"; with auth, also /auth/me, both with the token."""
    authorization: dict[str, str] = {}
    page.on(
        "request",
        lambda request: authorization.update(
            {urlsplit(request.url).path: request.headers.get("authorization", "")}
        ),
    )
    body = {"prompt": QUESTION} if auth else {"user_id": "alice", "prompt": QUESTION}
    answer = json.loads(try_it_out(page, "post", "/ai/query", body))
    assert re.fullmatch(r"\D*4\D*", answer["answer"]), answer
    if auth:
        me = json.loads(try_it_out(page, "get", "/auth/me"))
        assert me["username"] == USERNAME, me
        for path in ("/ai/query", "/auth/me"):
            assert authorization[path].startswith("Bearer "), f"{path} went without the token"


def test_without_a_chromium_the_browser_tests_fail_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setattr(shutil, "which", lambda _: None)

    with pytest.raises(pytest.fail.Exception) as failed:
        find_chromium()

    message = str(failed.value)
    assert "\n" not in message
    assert "apt-get install chromium" in message
