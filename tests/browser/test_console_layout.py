"""The console's main pages at a phone's width (390 px) and a laptop's (1280 px): no page scrolls
sideways, and axe-core (the npm package in ``tests/browser/axe``, loaded into the page) finds no
serious or critical accessibility violation. A screenshot of each page at each width goes to
tests/artifacts/screenshots/layout-<page>-<width>.png."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.browser.conftest import PAGE_TIMEOUT_MS, BrowserErrors, Nodes, screenshot, sign_in
from tests.tooling import unavailable

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (390, 1280)
HEIGHT = 900
BLOCKING_IMPACTS = ("serious", "critical")

OVERFLOW_JS = """() => {
  const limit = document.documentElement.clientWidth;
  const name = e => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}`;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > limit + 1)
    .map(e => `${name(e)} right=${Math.round(e.getBoundingClientRect().right)}`);
  // Text sticking out of its box widens the page without widening any element.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    range.selectNodeContents(t);
    const right = range.getBoundingClientRect().right;
    if (right > limit + 1) wide.push(`text in ${name(t.parentElement)} right=${Math.round(right)}`);
  }
  return {scroll: document.documentElement.scrollWidth, limit, wide: wide.slice(-5)};
}"""

AXE_JS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
  }));
}"""


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core's script, or a failure (a skip outside CI) saying how to install it; checked
    before the nodes start."""
    if not AXE_SCRIPT.is_file():
        unavailable(f"{AXE_SCRIPT} not found: run `npm ci --prefix {AXE_DIR}` (.ci/run does)")
    return AXE_SCRIPT


@pytest_asyncio.fixture(loop_scope="module")
async def csp_free_context(browser: Any) -> AsyncIterator[tuple[Any, BrowserErrors]]:
    """Like ``context``, but the console's CSP (no inline scripts) is bypassed so that axe-core's
    script can be added to the page; nothing else of the page changes."""
    errors = BrowserErrors()
    ctx = await browser.new_context(
        locale="ru-RU", viewport={"width": WIDTHS[-1], "height": HEIGHT}, bypass_csp=True
    )
    ctx.set_default_timeout(PAGE_TIMEOUT_MS)
    ctx.on("page", errors.watch)
    yield ctx, errors
    await ctx.close()
    assert errors.unexpected() == [], errors.unexpected()


async def _check(page: Any, url: str, name: str, script: Path) -> list[str]:
    """Open ``url`` at each width; the problems found (overflow, serious axe violations)."""
    problems: list[str] = []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": HEIGHT})
        await page.goto(url)
        await screenshot(page, f"layout-{name}-{width}")
        overflow = await page.evaluate(OVERFLOW_JS)
        if overflow["scroll"] > overflow["limit"]:
            problems.append(
                f"{name} at {width} px is {overflow['scroll']} px wide: {overflow['wide']}"
            )
        await page.add_script_tag(path=str(script))
        for v in await page.evaluate(AXE_JS):
            if v["impact"] in BLOCKING_IMPACTS:
                rule = f"{v['impact']} {v['id']} ({v['help']})"
                problems.append(f"{name} at {width} px: axe {rule} {v['targets']}")
    return problems


async def test_main_pages_fit_small_screens_and_pass_axe(
    axe_script: Path, nodes: Nodes, csp_free_context
) -> None:
    script = axe_script
    ctx, _ = csp_free_context
    request = await nodes.submit_request()
    cid = request["conversation_id"]
    base = nodes.kz.url

    problems: list[str] = []
    anonymous = await ctx.new_page()
    problems += await _check(anonymous, f"{base}/login", "login", script)
    await anonymous.close()

    operator = await sign_in(ctx, nodes.kz, "operator")
    await operator.goto(f"{base}/conversations/{cid}")
    message = await operator.locator("#timeline a[id^=open-]").first.get_attribute("href")
    assert message, "the conversation page links no message"
    for name, path in (
        ("dashboard", "/"),
        ("conversations", "/conversations"),
        ("conversation", f"/conversations/{cid}"),
        ("message", message),
        ("action-form", f"/conversations/{cid}/actions/delay"),
        ("new-request", "/requests/new/cis-enforcement"),
    ):
        problems += await _check(operator, base + path, name, script)

    admin = await sign_in(ctx, nodes.kz, "admin")
    problems += await _check(admin, f"{base}/admin/keys", "admin-keys", script)

    assert problems == [], "\n".join(problems)
