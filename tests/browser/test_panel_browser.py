"""The fal sidebar in a real JupyterLab, in headless Chromium, on one page for the whole module: a notebook
with two app cells shows both; one deploys locally with live progress to ready; its Playground opens
from the panel and runs a call; its log follows; it stops; "Deploy this cell with fal" captures and
deploys a fresh cell; a config key edited in the form lands in pyproject.toml, and a bad value shows
on its field; every button is reachable with the keyboard. Light and dark screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
import time

import nbformat
import pytest

from tests.polling import wait_for

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000
NOTEBOOK = "apps.ipynb"
ECHO_CELL = """%%fal_app echo-web --auth public --keep-alive 60 --machine-type GPU-H100
from fastapi import FastAPI
from pydantic import BaseModel


class Echo(BaseModel):
    text: str = "hello"


app = FastAPI()


@app.post("/")
def echo(body: Echo) -> dict:
    return {"echo": body.text.upper()}
"""
STATS_CELL = """%%fal_app --machine-type GPU-H100
import fal


class TextStats(fal.App):
    @fal.endpoint("/")
    def run(self, text: str) -> dict:
        return {"words": len(text.split())}
"""
FRESH_CELL = """from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict:
    return {"fresh": True}
"""
BROKEN_CELL = "%%fal_app broken-web --cmd 'exit 3 # $PORT'\nx = 1\n"
SLOW_CELL = "%%fal_app slow-web --cmd 'sleep 60 && python -m http.server $PORT'\nx = 1\n"
#: The kernel of the open notebook has started and is idle.
KERNEL_IDLE = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;  // jupyterapp exists once JupyterLab started
  const kernel = panel?.sessionContext?.session?.kernel;
  return !!kernel && kernel.status === 'idle';
}"""
#: Record every progress value and status the panel shows (for "watch progress reach ready").
RECORD = """() => {
  window.falSeen = {progress: [], statuses: []};
  const panel = document.getElementById('fal-notebook-panel');
  new MutationObserver(() => {
    for (const bar of panel.querySelectorAll('[role=progressbar]'))
      window.falSeen.progress.push(Number(bar.getAttribute('aria-valuenow')));
    for (const row of panel.querySelectorAll('[data-fal-app]'))
      window.falSeen.statuses.push(row.dataset.falApp + ':' + row.dataset.falStatus);
  }).observe(panel, {subtree: true, childList: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def page(lab, chromium):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Two apps"),
        nbformat.v4.new_code_cell(ECHO_CELL),
        nbformat.v4.new_code_cell(STATS_CELL),
    ]
    nbformat.write(nb, lab.root / NOTEBOOK)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(lab.workspace_url(NOTEBOOK))
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=TIMEOUT_MS)
    yield page
    page.close()


@pytest.fixture(scope="module")
def panel(page):
    tab = page.locator('.jp-SideBar li.lm-TabBar-tab[data-id="fal-notebook-panel"]')
    assert tab.get_attribute("title") == "fal"
    tab.click()
    panel = page.locator("#fal-notebook-panel")
    panel.wait_for()
    return panel


def row(panel, name: str, section: str = "notebook"):
    return panel.locator(f'[data-fal-section="{section}"] [data-fal-app="{name}"]')


def status_of(panel, name: str, section: str = "notebook") -> str:
    return row(panel, name, section).get_attribute("data-fal-status")


def wait_status(panel, name: str, status: str, section: str = "notebook") -> None:
    row(panel, name, section).and_(panel.page.locator(f'[data-fal-status="{status}"]')).wait_for(timeout=TIMEOUT_MS)


def field(form, key: str):
    """The input of a config key in the form (labelled by the key and its flag)."""
    return form.get_by_role("textbox", name=re.compile(rf"^{key}\b"))


def theme(page, name: str) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{name}'}})")
    light = "true" if name == "JupyterLab Light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=TIMEOUT_MS)


def shoot(page, panel, artifacts, name: str) -> None:
    """The whole panel (a page tall enough for all of it) in the light and the dark theme
    (``<name>-light.png``, ``<name>-dark.png``)."""
    viewport = page.viewport_size
    height = panel.locator(".fal-Panel-body").evaluate("body => body.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height + 120)})
    try:
        for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
            theme(page, theme_name)
            panel.screenshot(path=str(artifacts / f"{name}-{label}.png"))
    finally:
        page.set_viewport_size(viewport)


def test_the_panel_shows_the_notebooks_two_apps(page, panel, artifacts):
    echo, stats = row(panel, "echo-web"), row(panel, "text-stats")
    echo.wait_for()
    assert status_of(panel, "echo-web") == "captured" and status_of(panel, "text-stats") == "captured"
    assert "fal.App" in stats.inner_text() and "machine_type GPU-H100" in stats.inner_text()
    assert "auth public" in echo.inner_text()
    assert echo.get_by_role("combobox", name="Target").input_value() == "local"
    environment = echo.get_by_role("combobox", name="Environment")
    assert environment.is_enabled() and environment.input_value() == ""  # the server's default
    environment.locator("option", has_text="default (kernel)").wait_for(state="attached")  # FAL_NOTEBOOK_LOCAL_ENV
    for name in ("Deploy", "Stop", "Logs", "Playground"):
        assert echo.get_by_role("button", name=name, exact=True).count() == 1
    panel.get_by_text("Nothing else is deployed").wait_for()
    page.locator(".jp-StatusBar-Widget .fal-StatusButton").wait_for()
    shoot(page, panel, artifacts, "panel-captured")

    # the panel reads the notebook as it is typed, without a save
    page.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source: '%%fal_app\\nx = 1\\n'});
        }"""
    )
    broken = panel.locator(".fal-BrokenCell")
    broken.wait_for()
    assert "no fal.App subclass" in broken.inner_text()
    page.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.model.sharedModel.deleteCell(nb.model.cells.length - 1);
        }"""
    )
    broken.wait_for(state="detached")


def test_deploy_locally_and_watch_the_progress_reach_ready(page, panel, artifacts, lab):
    echo = row(panel, "echo-web")
    page.evaluate(RECORD)
    echo.get_by_role("combobox", name="Environment").select_option("kernel")
    echo.get_by_role("button", name="Deploy", exact=True).click()
    echo.get_by_role("progressbar").wait_for(timeout=TIMEOUT_MS)
    wait_status(panel, "echo-web", "ready")
    seen = page.evaluate("() => window.falSeen")
    statuses = [s.partition(":")[2] for s in seen["statuses"] if s.startswith("echo-web:")]
    assert "deploying" in statuses and statuses[-1] == "ready", statuses
    progress = seen["progress"]
    assert progress and min(progress) < 100 and progress == sorted(progress), progress
    assert (lab.root / "fal_apps" / "echo-web" / "server.py").is_file()  # captured from the notebook's content
    text = echo.inner_text()
    assert "local/echo-web" in text and "on local" in text
    assert re.search(r"runners\s*1", text), text
    assert re.search(r"GPU\s*echo-web-r1-1: GPU [01]", text), text  # a GPU app's runner holds one of the two
    page.get_by_text(re.compile(r"fal: gateway running, 1/1 ready")).wait_for()


def test_the_playground_opens_from_the_panel_and_runs_a_call(page, panel, artifacts):
    row(panel, "echo-web").get_by_role("button", name="Playground", exact=True).click()
    playground = page.locator(".fal-pg-playground")
    playground.wait_for(timeout=TIMEOUT_MS)
    sources = page.evaluate(
        "() => Array.from(window.jupyterapp.shell.currentWidget.content.model.cells)"
        ".map(cell => cell.sharedModel.getSource())"
    )
    assert sources[2] == "%fal_playground echo-web"  # right below the app's cell
    text_row = playground.locator(".fal-pg-row").filter(
        has=page.locator("code.fal-pg-name", has_text=re.compile(r"^text$"))
    )
    field = text_row.locator("textarea, input[type=text]").first
    field.fill("")
    field.press_sequentially("from the panel")
    playground.locator("button", has_text=re.compile(r"^\s*Run\s*$")).click()
    try:
        playground.locator(".fal-pg-output", has_text="FROM THE PANEL").wait_for(timeout=TIMEOUT_MS)
    finally:
        page.screenshot(path=str(artifacts / "panel-playground-light.png"))


def test_logs_follow_live_in_the_main_area(page, panel, artifacts):
    row(panel, "echo-web").get_by_role("button", name="Logs", exact=True).click()
    viewer = page.locator("#fal-notebook-logs-echo-web")
    viewer.locator(".fal-Logs-lines", has_text="is serving").wait_for(timeout=TIMEOUT_MS)
    viewer.locator(".fal-Logs-status", has_text="(live)").wait_for()
    viewer.screenshot(path=str(artifacts / "panel-logs-light.png"))
    page.evaluate("() => window.jupyterapp.commands.execute('application:close')")  # the logs tab is current
    viewer.wait_for(state="detached")


def test_config_edits_land_in_pyproject_and_errors_show_on_their_field(page, panel, artifacts, lab):
    echo = row(panel, "echo-web")
    echo.get_by_role("button", name="Configure echo-web").click()
    form = echo.get_by_role("form", name="Configuration of echo-web")
    assert field(form, "keep_alive").input_value() == "60"  # the keys the cell set are there
    form.get_by_role("combobox", name="Add a key").select_option("max_concurrency")
    field(form, "max_concurrency").fill("2")
    form.get_by_role("button", name="Save").click()
    pyproject = lab.root / "fal_apps" / "echo-web" / "pyproject.toml"
    wait_for(lambda: "max_concurrency = 2" in pyproject.read_text(), "the form's change in pyproject.toml")

    form.get_by_role("combobox", name="Add a key").select_option("min_concurrency")
    field(form, "min_concurrency").fill("5")
    form.get_by_role("button", name="Save").click()
    error = form.locator('[data-fal-key="min_concurrency"] [role=alert]')
    error.wait_for()
    assert "greater than max_concurrency" in error.inner_text()
    assert field(form, "min_concurrency").get_attribute("aria-invalid") == "true"
    assert "min_concurrency" not in pyproject.read_text()  # nothing written
    echo.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-config-error")
    form.get_by_role("button", name="Remove min_concurrency").click()
    form.get_by_role("button", name="Close").click()
    form.wait_for(state="detached")
    echo.get_by_role("button", name="Open echo-web's pyproject.toml").click()
    editor = page.locator(".jp-FileEditor", has_text="max_concurrency = 2")
    editor.wait_for()
    page.evaluate("() => window.jupyterapp.commands.execute('application:close')")
    editor.wait_for(state="detached")


def test_failed_and_cancelled_deploys_say_so_in_their_row(page, panel, artifacts):
    add_cells = """(sources) => {
      const nb = window.jupyterapp.shell.currentWidget.content;
      for (const source of sources) nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source});
    }"""
    page.evaluate(add_cells, [BROKEN_CELL, SLOW_CELL])
    broken, slow = row(panel, "broken-web"), row(panel, "slow-web")
    broken.get_by_role("button", name="Deploy", exact=True).click()
    wait_status(panel, "broken-web", "failed")
    broken.locator(".fal-Job-failed .fal-Error", has_text="Deploying broken-web failed").wait_for()
    slow.get_by_role("button", name="Deploy", exact=True).click()
    slow.get_by_role("progressbar").wait_for(timeout=TIMEOUT_MS)
    slow.locator(".fal-Step-current", has_text="Runners").wait_for(timeout=TIMEOUT_MS)
    shoot(page, panel, artifacts, "panel-deploying")  # its runner waits 60 s before it listens
    slow.get_by_role("button", name="Cancel").click()
    wait_status(panel, "slow-web", "stopped")
    slow.locator(".fal-Job-cancelled", has_text="was cancelled").wait_for()
    broken.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-failed-cancelled")
    page.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.model.sharedModel.deleteCell(nb.model.cells.length - 1);
          nb.model.sharedModel.deleteCell(nb.model.cells.length - 1);
        }"""
    )
    broken.wait_for(state="detached")


def test_every_button_is_reachable_with_the_keyboard(page, panel, artifacts):
    shoot(page, panel, artifacts, "panel-ready")
    controls = panel.locator("button:enabled, select:enabled, input:enabled")
    expected = {controls.nth(i).evaluate("e => e.outerHTML") for i in range(controls.count())}
    controls.first.focus()
    reached = set()
    for _ in range(len(expected) * 3):
        html = page.evaluate(
            "() => document.getElementById('fal-notebook-panel').contains(document.activeElement)"
            " ? document.activeElement.outerHTML : null"
        )
        if html is None:
            break
        reached.add(html)
        page.keyboard.press("Tab")
    assert expected <= reached, expected - reached
    unnamed = panel.locator("button").evaluate_all(
        "buttons => buttons.filter(b => !(b.getAttribute('aria-label') || b.textContent.trim())).map(b => b.outerHTML)"
    )
    assert unnamed == []


def test_stop_from_the_panel(page, panel, artifacts):
    row(panel, "echo-web").get_by_role("button", name="Stop", exact=True).click()
    wait_status(panel, "echo-web", "stopped")
    page.get_by_text(re.compile(r"fal: gateway running, 0/3 ready")).wait_for()  # broken-web and slow-web too


def test_the_hidden_panel_asks_the_server_nothing_and_the_status_bar_opens_it(page, panel):
    asked, closed = [], []

    def on_request(request):
        if "/fal-notebook/" in request.url:
            asked.append(request.url)

    def on_closed(request):
        if "/fal-notebook/events" in request.url:
            closed.append(request.url)

    page.on("request", on_request)
    page.on("requestfailed", on_closed)
    page.on("requestfinished", on_closed)
    try:
        page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
        panel.wait_for(state="hidden")
        deadline = time.monotonic() + 10
        while not closed and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert closed, "the live stream stayed open while the panel was hidden"
        asked.clear()
        page.wait_for_timeout(5000)  # more than twice the server's refresh interval
        assert asked == []
        page.locator(".jp-StatusBar-Widget .fal-StatusButton").click()
        panel.wait_for()
        panel.locator('.fal-Panel-body[aria-busy="false"]').wait_for()
        assert any(url.split("?")[0].endswith("/fal-notebook/events") for url in asked)
    finally:
        page.remove_listener("request", on_request)
        page.remove_listener("requestfailed", on_closed)
        page.remove_listener("requestfinished", on_closed)


def test_deploy_this_cell_with_fal_on_a_fresh_cell(page, panel, artifacts):
    page.evaluate(
        """(source) => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source});
          nb.activeCellIndex = nb.model.cells.length - 1;
        }""",
        FRESH_CELL,
    )
    page.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-InputArea-editor").click(button="right")
    page.locator(
        '.lm-Menu-item[data-command="fal-notebook:deploy-cell"]', has_text="Deploy this cell with fal"
    ).wait_for()
    page.keyboard.press("Escape")
    page.locator(".jp-Notebook .jp-Cell.jp-mod-active .jp-cell-toolbar").hover()
    page.locator('.jp-Cell.jp-mod-active .jp-cell-toolbar [data-command="fal-notebook:deploy-cell"]').click()
    dialog = page.locator(".jp-Dialog")
    name = dialog.get_by_label("App name")
    name.wait_for()
    assert name.input_value() == "server"  # what fal-notebook would name it
    name.fill("fresh-web")
    assert dialog.get_by_label("Target").input_value() == "local"
    dialog.screenshot(path=str(artifacts / "deploy-cell-dialog-light.png"))
    dialog.get_by_role("button", name="Deploy").click()
    wait_status(panel, "fresh-web", "ready")
    source = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.getSource()"
    )
    assert source.startswith("%%fal_app fresh-web\n")
    row(panel, "fresh-web").scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-deployed")
    page.screenshot(path=str(artifacts / "panel-page-light.png"))


def test_fal_deploy_in_the_notebook_shows_the_same_progress_on_its_card(page, panel, artifacts):
    page.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source: '%fal_deploy echo-web'});
          nb.activeCellIndex = nb.model.cells.length - 1;
        }"""
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    card = page.locator(".fal-pg-progress")
    card.locator(".fal-pg-status-completed", has_text="ready").wait_for(timeout=TIMEOUT_MS)
    bar = card.locator(".widget-hprogress .progress-bar")
    assert bar.evaluate("bar => bar.style.width") == "100%"
    assert "Starting runners" in card.inner_text() and "is serving" in card.inner_text()
    wait_status(panel, "echo-web", "ready")  # the panel follows a deploy made in a cell
    card.scroll_into_view_if_needed()
    for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
        theme(page, theme_name)
        card.screenshot(path=str(artifacts / f"deploy-progress-card-{label}.png"))
