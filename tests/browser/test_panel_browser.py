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

api = FastAPI()


@api.get("/")
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
    assert name.input_value() == "apps-api"  # the notebook's name and the object's: never just "server"
    entry = dialog.get_by_label("Server object")
    assert entry.input_value() == "api"  # the cell's ASGI object, picked by its name
    dialog.locator(".fal-Note", has_text='"%%fal_app apps-api --entry api" is added').wait_for()
    assert dialog.get_by_role("button", name="Deploy").is_enabled()
    name.fill("")
    dialog.locator(".fal-Note", has_text="Give the app a name").wait_for()
    assert dialog.get_by_role("button", name="Deploy").is_disabled()  # predicted failure: no Deploy
    name.fill("fresh-web")
    dialog.locator(".fal-Note", has_text='"%%fal_app fresh-web --entry api" is added').wait_for()
    assert dialog.get_by_label("Target").input_value() == "local"
    for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
        theme(page, theme_name)
        dialog.screenshot(path=str(artifacts / f"deploy-cell-dialog-{label}.png"))
    dialog.get_by_role("button", name="Deploy").click()
    wait_status(panel, "fresh-web", "ready")
    source = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.getSource()"
    )
    assert source.startswith("%%fal_app fresh-web --entry api\n")
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
    assert "Runners" in card.inner_text() and "is serving" in card.inner_text()  # the panel's step names
    wait_status(panel, "echo-web", "ready")  # the panel follows a deploy made in a cell
    card.scroll_into_view_if_needed()
    for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
        theme(page, theme_name)
        card.screenshot(path=str(artifacts / f"deploy-progress-card-{label}.png"))


def add_cells(page, *sources: str) -> None:
    page.evaluate(
        """(sources) => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          for (const source of sources)
            nb.model.sharedModel.insertCell(nb.model.cells.length, {cell_type: 'code', source});
          nb.activeCellIndex = nb.model.cells.length - 1;
        }""",
        list(sources),
    )


def delete_last_cells(page, count: int) -> None:
    page.evaluate(
        """(count) => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          for (let i = 0; i < count; i++) nb.model.sharedModel.deleteCell(nb.model.cells.length - 1);
        }""",
        count,
    )


def run_last_cell(page) -> None:
    page.evaluate(
        """() => {
          const nb = window.jupyterapp.shell.currentWidget.content;
          nb.activeCellIndex = nb.model.cells.length - 1;
          void window.jupyterapp.commands.execute('notebook:run-cell');  // not awaited: a deploy runs on
        }"""
    )


def last_output(page) -> str:
    return page.evaluate(
        """() => {
          const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
          return cells[cells.length - 1].querySelector('.jp-OutputArea')?.innerText ?? '';
        }"""
    )


#: An element's text on one line, cut at the end rather than broken (its whole value is its tooltip).
ONE_LINE = "e => [getComputedStyle(e).whiteSpace, getComputedStyle(e).textOverflow, e.getClientRects().length]"
#: A server whose module takes 10 minutes to import: its deploy stays in the Runners step until
#: cancelled (captured without running it in the kernel).
SLEEPY_CELL = """%%fal_app sleepy-web --no-run
import time

from fastapi import FastAPI

app = FastAPI()
time.sleep(600)
"""
HELLO_API_CELL = "%%fal_app hello-api\nfrom fastapi import FastAPI\n\napi = FastAPI()\n"
PLAIN_CELL = """%%fal_app plain-web --auth public
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "plain"})


app = Starlette(routes=[Route("/", hello)])
"""
CRASH_CELL = """%%fal_app crash-web
from fastapi import FastAPI

app = FastAPI()
raise RuntimeError("no GPU here")
"""


def test_config_saved_in_the_editor_is_what_deploys_and_stays_in_the_file(page, panel, artifacts, lab):
    """Issue 19, 1: keep_alive and max_concurrency saved in the form survive the panel's Deploy, which
    captures the cell again; the row shows them as what deploys (set in the file)."""
    echo = row(panel, "echo-web")
    echo.get_by_role("button", name="Configure echo-web").click()
    form = echo.get_by_role("form", name="Configuration of echo-web")
    field(form, "keep_alive").fill("300")
    form.get_by_role("button", name="Save").click()
    form.get_by_text("the next Deploy deploys it").wait_for()
    echo.locator(".fal-Chip-file", has_text="keep_alive 300").wait_for()  # what deploys, marked as the file's
    echo.locator(".fal-Chip-file", has_text="max_concurrency 2").wait_for()
    field(form, "keep_alive").press("Escape")  # Escape closes the form, the focus goes back to its button
    form.wait_for(state="detached")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Configure echo-web"
    echo.get_by_role("button", name="Deploy", exact=True).click()
    echo.get_by_role("progressbar").wait_for(timeout=TIMEOUT_MS)
    wait_status(panel, "echo-web", "ready")
    text = (lab.root / "fal_apps" / "echo-web" / "pyproject.toml").read_text()
    assert "keep_alive = 300" in text and "max_concurrency = 2" in text  # not undone by the capture
    from fal_notebook.generate.project import AppProject

    deployed = AppProject.load(lab.root / "fal_apps" / "echo-web").config
    assert (deployed.keep_alive, deployed.max_concurrency) == (300, 2)
    log = echo.locator(".fal-Job-log")
    assert log.count() == 0 or "%fal_deploy" not in log.inner_text()  # no magic hint in a panel deploy
    echo.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-config-deployed")


def test_a_broken_cell_beside_a_good_one_does_not_block_its_deploy(page, panel, artifacts):
    """Issue 19, 2: the broken cell's message names its app and cell, claims no success; the good app deploys."""
    add_cells(page, HELLO_API_CELL)
    broken = panel.locator(".fal-BrokenCell", has_text="hello-api")
    broken.wait_for()
    text = broken.inner_text()
    assert "It defines the server object `api`: add --entry api." in text and "Written" not in text
    echo = row(panel, "echo-web")
    echo.get_by_role("button", name="Deploy", exact=True).click()
    echo.get_by_role("progressbar").wait_for(timeout=TIMEOUT_MS)
    wait_status(panel, "echo-web", "ready")
    assert echo.locator(".fal-Job-failed").count() == 0
    broken.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-broken-beside-good")
    delete_last_cells(page, 1)
    broken.wait_for(state="detached")


def test_a_deploy_started_in_the_kernel_is_followed_and_cancelled_from_the_panel(page, panel, artifacts, lab):
    """Issue 19, 3: `%fal_deploy` in a cell is a job: the panel shows its steps and its Cancel stops it;
    the kernel's card says how it ended."""
    add_cells(page, "%load_ext fal_notebook")
    run_last_cell(page)
    add_cells(page, SLEEPY_CELL)
    run_last_cell(page)
    row(panel, "sleepy-web").wait_for()
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)  # captured
    add_cells(page, "%fal_deploy sleepy-web")
    run_last_cell(page)
    slow = row(panel, "sleepy-web")
    slow.locator(".fal-Note", has_text="started by %fal_deploy in a notebook").wait_for(timeout=TIMEOUT_MS)
    slow.locator(".fal-Step-current", has_text="Runners").wait_for(timeout=TIMEOUT_MS)
    card = page.locator(".fal-pg-progress").last
    card.locator(".fal-pg-cancel").wait_for()  # the card has Cancel too
    shoot(page, panel, artifacts, "panel-kernel-deploy")
    slow.get_by_role("button", name="Cancel").click()
    card.locator(".fal-pg-status-cancelled").wait_for(timeout=TIMEOUT_MS)
    wait_status(panel, "sleepy-web", "stopped")
    output = last_output(page)
    assert "was cancelled" in output and "Traceback" not in output, output
    card.scroll_into_view_if_needed()
    for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
        theme(page, theme_name)
        card.screenshot(path=str(artifacts / f"deploy-card-cancelled-{label}.png"))


def test_an_interrupted_kernel_cancels_its_deploy_and_says_so(page, panel, artifacts):
    """Issue 19, 3: interrupting the kernel during `%fal_deploy` asks the gateway to cancel; the card and
    the output say what happened, with no raw traceback."""
    run_last_cell(page)  # `%fal_deploy sleepy-web` again
    slow = row(panel, "sleepy-web")
    slow.locator(".fal-Step-current", has_text="Runners").wait_for(timeout=TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:interrupt-kernel')")
    card = page.locator(".fal-pg-progress").last
    card.locator(".fal-pg-status-cancelled").wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT_MS)
    output = last_output(page)
    assert "Interrupted: cancelling the deploy of sleepy-web" in output and "was cancelled" in output, output
    assert "httpcore" not in output and "KeyboardInterrupt" not in output and "Traceback" not in output, output
    wait_status(panel, "sleepy-web", "stopped")  # the true state: the gateway dropped the rollout
    card.scroll_into_view_if_needed()
    for label, theme_name in (("dark", "JupyterLab Dark"), ("light", "JupyterLab Light")):
        theme(page, theme_name)
        card.screenshot(path=str(artifacts / f"deploy-card-interrupted-{label}.png"))
    delete_last_cells(page, 3)


def test_a_server_without_a_schema_gets_the_request_form_as_its_playground(page, panel, artifacts):
    """Issue 19, 4: no typed Playground where there is no schema: the row says so, and its Playground is
    the form for any HTTP request (issue 21's), not a cell that fails."""
    add_cells(page, PLAIN_CELL)
    plain = row(panel, "plain-web")
    plain.get_by_role("button", name="Deploy", exact=True).click()
    wait_status(panel, "plain-web", "ready")
    plain.locator(".fal-Note", has_text="a form for any HTTP request").wait_for()
    plain.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-no-schema")
    plain.get_by_role("button", name="Playground", exact=True).click()
    playground = page.locator(".fal-pg-playground").last
    playground.get_by_text("sends any HTTP request").wait_for(timeout=TIMEOUT_MS)
    assert "Unknown app or path" not in playground.inner_text()


def test_a_crash_shows_its_key_line_first_and_the_whole_text_on_show(page, panel, artifacts):
    """Issue 19, 6."""
    add_cells(page, CRASH_CELL)
    crash = row(panel, "crash-web")
    crash.get_by_role("button", name="Deploy", exact=True).click()
    wait_status(panel, "crash-web", "failed")
    key = crash.locator(".fal-Error-key").first
    key.wait_for()
    assert key.inner_text().strip() == "RuntimeError: no GPU here"
    assert key.evaluate("e => e.tagName") == "PRE"  # a monospace block
    crash.scroll_into_view_if_needed()
    shoot(page, panel, artifacts, "panel-crash")
    crash.get_by_role("button", name=re.compile("^Show the full text")).first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator(".fal-TextDialog", has_text="Traceback").wait_for()
    assert "rev-" not in dialog.inner_text()  # paths name the project's files, not the gateway's copy
    assert "fal_apps/crash-web/server.py" in dialog.inner_text()
    dialog.screenshot(path=str(artifacts / "panel-crash-details-light.png"))
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="detached")


def test_sections_collapse_and_the_narrow_sidebar_keeps_its_lines(page, panel, artifacts):
    """Issue 19, 7: collapsible sections; at the sidebar's width nothing scrolls sideways and names and
    URLs stay on one line; opening the panel puts the focus in it."""
    toggle = panel.locator("#fal-section-folders")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert panel.locator("#fal-section-folders-body").is_hidden()
    echo = row(panel, "echo-web")
    echo.get_by_role("button", name="Configure echo-web").click()
    form = echo.get_by_role("form", name="Configuration of echo-web")
    form.wait_for()
    width = panel.evaluate("p => p.getBoundingClientRect().width")
    overflow = panel.evaluate("p => p.querySelector('.fal-Panel-body').scrollWidth - p.clientWidth")
    assert overflow <= 1, f"the panel ({width:.0f} px) scrolls sideways by {overflow} px"
    for locator in (echo.locator(".fal-Row-name"), echo.locator(".fal-Copy code").first):
        assert locator.evaluate(ONE_LINE) == ["nowrap", "ellipsis", 1], locator
    shoot(page, panel, artifacts, "panel-collapsed-narrow")
    field(form, "keep_alive").press("Escape")
    form.wait_for(state="detached")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.locator(".jp-Notebook").click()
    page.evaluate("() => window.jupyterapp.commands.execute('fal-notebook:open-panel')")
    page.wait_for_function("() => document.getElementById('fal-notebook-panel').contains(document.activeElement)")
