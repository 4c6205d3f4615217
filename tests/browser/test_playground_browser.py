"""The Playground in a real JupyterLab, in headless Chromium: notebooks/playground.ipynb runs, a user types
into the Playground's form, clicks Run, and sees the output (text and an image) rendered; and a notebook
that deploys a realtime app, where the user connects, sends a message and sees the app's answer."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from ..realtime_apps import LIVE
from .conftest import REPO

pytestmark = pytest.mark.browser

NOTEBOOK = REPO / "notebooks" / "playground.ipynb"
TIMEOUT_MS = 180_000  # the whole notebook: capture, deploy, first call
TYPED = "typed in Chromium"

#: The open notebook's cells, read from JupyterLab's own model (window.jupyterapp).
NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;  // jupyterapp exists once JupyterLab started
  const kernel = panel?.sessionContext?.session?.kernel;
  if (!panel?.content?.model || !kernel) return null;
  const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === "code");
  const errors = cells.flatMap(cell => cell.outputs.toJSON())
                      .filter(output => output.output_type === "error")
                      .map(output => `${output.ename}: ${output.evalue}`);
  return {status: kernel.status, counts: cells.map(cell => cell.executionCount), errors};
}"""


def run_notebook(page, lab, name: str) -> None:
    """Open the notebook in a fresh workspace, run all its cells and wait until they ran without error."""
    page.goto(lab.workspace_url(name))
    page.wait_for_function(
        "() => { const s = (" + NOTEBOOK_STATE + ")(); return s && s.status === 'idle'; }", timeout=TIMEOUT_MS
    )  # Run All before the kernel is ready would be lost
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    state = page.wait_for_function(
        "() => { const s = (" + NOTEBOOK_STATE + ")();"
        " return s && (s.errors.length || (s.status === 'idle' && s.counts.every(n => n))) ? s : null; }",
        timeout=TIMEOUT_MS,
    ).json_value()
    assert state["errors"] == [], f"the notebook failed: {state['errors']}"


def set_theme(page, theme: str) -> None:
    """Switch JupyterLab to ``light`` or ``dark``, and wait until it shows it."""
    name = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}[theme]
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(theme == 'light').lower()}'")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=TIMEOUT_MS)


def test_type_into_the_playground_click_run_and_see_the_output(lab, chromium, artifacts):
    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        run_notebook(page, lab, NOTEBOOK.name)
        playground = page.locator(".fal-pg-playground")
        playground.wait_for()
        # the programmatic call of the notebook already rendered its output in the widget
        playground.locator(".fal-pg-text", has_text="A badge: filled in from code").wait_for()

        text_row = playground.locator(".fal-pg-row").filter(
            has=page.locator("code.fal-pg-name", has_text=re.compile(r"^text$"))
        )
        text_input = text_row.locator("textarea, input[type=text]").first
        text_input.fill("")
        text_input.press_sequentially(TYPED)
        playground.locator("button", has_text=re.compile(r"^\s*Run\s*$")).click()

        caption = playground.locator(".fal-pg-output .fal-pg-text", has_text=f"A badge: {TYPED}")
        caption.wait_for(timeout=TIMEOUT_MS)
        image = playground.locator(".fal-pg-output .fal-pg-image img")
        image.wait_for()
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [320, 64]
        assert "Completed" in playground.locator(".fal-pg-status").inner_text()
        playground.scroll_into_view_if_needed()
        set_theme(page, "dark")
        playground.screenshot(path=str(artifacts / "playground-dark.png"))
        set_theme(page, "light")
    finally:
        if page.locator(".fal-pg-playground").count():
            page.locator(".fal-pg-playground").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "playground.png"))
        page.close()


def realtime_notebook() -> nbformat.NotebookNode:
    """Capture the LIVE app (tests/realtime_apps.py), deploy it, show the Playground on its realtime endpoint."""
    cells = [
        "%load_ext fal_notebook",
        "%%fal_app live" + LIVE,
        "%fal_deploy live",
        "%fal_playground live --endpoint /realtime",
    ]
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells], metadata={"kernelspec": kernel}
    )


def test_connect_to_a_realtime_endpoint_send_a_message_and_see_the_answer(lab, chromium, artifacts):
    nbformat.write(realtime_notebook(), lab.root / "realtime.ipynb")
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        run_notebook(page, lab, "realtime.ipynb")
        playground = page.locator(".fal-pg-playground")
        playground.wait_for()
        status = playground.locator(".fal-pg-status")
        assert status.inner_text() == "Not connected"

        def button(name: str):
            return playground.locator("button", has_text=re.compile(rf"^\s*{name}\s*$"))

        assert button("Send").is_disabled() and button("Disconnect").is_disabled()
        assert "mod-primary" in button("Connect").get_attribute("class")
        button("Connect").click()
        status.filter(has_text="Connected to /realtime · 0 sent · 0 received").wait_for(timeout=TIMEOUT_MS)

        text_row = playground.locator(".fal-pg-row").filter(
            has=page.locator("code.fal-pg-name", has_text=re.compile(r"^text$"))
        )
        text_input = text_row.locator("textarea, input[type=text]").first
        text_input.press_sequentially(TYPED)
        button("Send").click()
        playground.locator(".fal-pg-output .fal-pg-text", has_text=TYPED.upper()).wait_for(timeout=TIMEOUT_MS)
        status.filter(has_text="Connected to /realtime · 1 sent · 1 received").wait_for()
        assert button("Connect").is_disabled() and button("Send").is_enabled()
        assert "mod-primary" in button("Send").get_attribute("class")  # the next step stands out

        playground.scroll_into_view_if_needed()
        playground.screenshot(path=str(artifacts / "playground-realtime-light.png"))
        set_theme(page, "dark")
        playground.screenshot(path=str(artifacts / "playground-realtime-dark.png"))
        set_theme(page, "light")

        button("Disconnect").click()
        status.filter(has_text="Disconnected · 1 sent · 1 received").wait_for()
        assert button("Connect").is_enabled() and button("Send").is_disabled()
    finally:
        page.screenshot(path=str(artifacts / "playground-realtime-page.png"))
        page.close()
