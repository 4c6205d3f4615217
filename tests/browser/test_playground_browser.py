"""notebooks/playground.ipynb in a real JupyterLab, in headless Chromium: the notebook runs, a user types
into the Playground's form, clicks Run, and sees the output (text and an image) rendered."""

from __future__ import annotations

import re
import shutil

import pytest

from .conftest import REPO

pytestmark = pytest.mark.browser

NOTEBOOK = REPO / "notebooks" / "playground.ipynb"
TIMEOUT_MS = 180_000  # the whole notebook: capture, deploy, first call
TYPED = "typed in Chromium"

#: The open notebook's cells, read from JupyterLab's own model (window.jupyterapp).
NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel?.sessionContext?.session?.kernel;
  if (!panel?.content?.model || !kernel) return null;
  const cells = Array.from(panel.content.model.cells).filter(cell => cell.type === "code");
  const errors = cells.flatMap(cell => cell.outputs.toJSON())
                      .filter(output => output.output_type === "error")
                      .map(output => `${output.ename}: ${output.evalue}`);
  return {status: kernel.status, counts: cells.map(cell => cell.executionCount), errors};
}"""


def test_type_into_the_playground_click_run_and_see_the_output(lab, chromium, artifacts):
    shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(lab.workspace_url(NOTEBOOK.name))
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
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=TIMEOUT_MS)
        playground.screenshot(path=str(artifacts / "playground-dark.png"))
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")
        page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=TIMEOUT_MS)
    finally:
        if page.locator(".fal-pg-playground").count():
            page.locator(".fal-pg-playground").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "playground.png"))
        page.close()
