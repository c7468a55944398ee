"""axe-core in a Playwright page: the accessibility check every UI test can run.

axe-core comes from the web app's own lock file (``web/node_modules``, put
there by ``npm ci``); it is injected into the page under test, run on the
whole document, and its serious and critical violations are the failure.
Shared by the chat, login and ``/admin`` page tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.processes import REPO

AXE_SCRIPT = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe's serious and critical violations of the page as it is now (WCAG 2.x A and AA)."""
    if not AXE_SCRIPT.is_file():
        pytest.fail(f"no {AXE_SCRIPT}: run `cd web && npm ci` (make test does)", pytrace=False)
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated, not added as a <script>: the page's CSP allows no inline script.
        page.evaluate(AXE_SCRIPT.read_text("utf-8"))
    result: dict[str, Any] = page.evaluate(
        """async () => await window.axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        })"""
    )
    return [v for v in result["violations"] if v.get("impact") in BLOCKING_IMPACTS]


def assert_accessible(page: Any) -> None:
    """Fail with each serious or critical violation and where it is."""
    problems = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in axe_violations(page)
    ]
    assert not problems, "\n".join(problems)
