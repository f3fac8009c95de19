"""A person's click-through in Label Studio's labelling UI, in headless Chromium, pulled back into annoflow.

The connector test (test_labelstudio.py) posts annotations through the API; this one logs in with the
admin's e-mail and password, opens the pushed task, keeps the pre-label, draws a second box with the
mouse and clicks Submit, so what annoflow pulls is what Label Studio's React app really sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from common.labelstudio import LabelStudioClient, link, pull, push
from tests.labelstudio.helpers import labelled_store, prelabel
from tests.labelstudio.server import LabelStudio
from tests.servers import chromium

pytestmark = pytest.mark.integration
W, H = 400, 300  # the image, in pixels
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
WAIT_MS = 20_000  # the labelling UI is a React app that loads after the page does


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _annotate_in_browser(page: Page, ls: LabelStudio, ls_project: int, ls_task: int) -> dict[str, Any]:
    """Log in, open the task, keep the pre-label, draw a 'pear' box at (260, 200, 100, 80) px, Submit."""
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{ls.url}/user/login/", wait_until="domcontentloaded")
    page.fill('input[name="email"]', ls.email)
    page.fill('input[name="password"]', ls.password)
    with page.expect_navigation(wait_until="domcontentloaded"):
        page.click('button[type="submit"]')
    assert "/user/login" not in page.url, f"the login as {ls.email} was refused"

    page.goto(f"{ls.url}/projects/{ls_project}/data?task={ls_task}", wait_until="domcontentloaded")
    canvas = page.locator(".konvajs-content")
    canvas.wait_for(state="visible")
    page.locator('img[src*="local-files"]').first.wait_for(state="attached")
    page.get_by_text("apple", exact=True).first.wait_for()  # the pre-label, in the regions list

    page.keyboard.press("2")  # the hotkey of the second label, 'pear'
    box = canvas.bounding_box()
    assert box is not None
    sx, sy = box["width"] / W, box["height"] / H
    x0, y0 = box["x"] + 260 * sx, box["y"] + 200 * sy
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 50 * sx, y0 + 40 * sy, steps=5)
    page.mouse.move(x0 + 100 * sx, y0 + 80 * sy, steps=5)
    page.mouse.up()
    page.get_by_text("pear", exact=True).nth(1).wait_for()  # the new region, next to the label button

    with page.expect_response(lambda r: "/annotations" in r.url and r.request.method == "POST") as answer:
        page.click('[data-testid="bottombar-submit-button"]')
    assert answer.value.status == 201, answer.value.text()
    body: dict[str, Any] = answer.value.json()
    return body


def test_annotator_submits_in_browser_and_pull_moves_the_task(
    tmp_path: Path, browser: Browser, ls: LabelStudio
) -> None:
    # Given a task pre-labelled with an apple box, its annotation stage linked and pushed to Label Studio
    store, pid = labelled_store(tmp_path, ls, "browser", ["b1"], (W, H))
    prelabel(store, "browser", "browser-b1", {"x": 40, "y": 30, "width": 200, "height": 150})
    client = LabelStudioClient(ls.url, ls.token)
    lnk = link(store, client, "browser", "Annotate 1", labels=["apple", "pear"])
    assert push(store, client, lnk, str(ls.files_root)).pushed == 1
    (ls_task,) = client.tasks(lnk.ls_project)

    # When the admin logs in in Chromium, keeps the pre-label, draws a pear box and clicks Submit
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        sent = _annotate_in_browser(page, ls, lnk.ls_project, int(ls_task["id"]))
    except Exception:
        page.screenshot(path=str(tmp_path / "labelstudio.png"), full_page=True)
        print(f"screenshot of the failure: {tmp_path / 'labelstudio.png'}")
        raise
    assert [r["value"]["rectanglelabels"] for r in sent["result"]] == [["apple"], ["pear"]]

    # And annoflow pulls
    report = pull(store, client, lnk)

    # Then the task is in Review 1, moved by the admin, its label row holding both boxes in pixels
    assert len(report.applied) == 1 and report.reported == [], report
    (task,) = store.iter_tasks(pid, None, {})
    assert store.workflow(pid).stages[task.stage_uuid].title == "Review 1"
    assert store.events(pid)[-1].actor == ls.email
    apple, pear = sorted(store.get_label_row(pid, "browser-b1").objects, key=lambda o: str(o["class_id"]))
    assert apple["coordinates"] == pytest.approx({"x": 40, "y": 30, "width": 200, "height": 150})
    assert pear["class_id"] == "pear" and pear["properties"]["annotator"] == ls.email
    assert pear["coordinates"] == pytest.approx({"x": 260, "y": 200, "width": 100, "height": 80}, abs=8)
    client.close()
    store.close()
