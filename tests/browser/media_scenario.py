"""A person using the Playground of an image and file app, in a real JupyterLab in headless Chromium, as one
program (test_media_browser.py runs it with the network cut: JupyterLab, its kernel, the gateway, the
runner and Chromium all in a network namespace with loopback only).

A notebook captures and deploys the MEDIA app (tests/gateway/gateway_apps.py) and shows its Playground;
the person clicks Run and sees the image the app returned (served by the gateway's store); then picks the
/read endpoint, uploads a file from disk into its file field (stored in the gateway) and runs it: the app
reads the bytes back. Screenshots, light and dark, go to ARTIFACTS; what was seen is printed as one JSON line.

    python -m tests.browser.media_scenario WORK_DIR ARTIFACTS
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

from tests.browser.conftest import chromium_browser, running_lab
from tests.browser.test_playground_browser import TIMEOUT_MS, run_notebook, set_theme
from tests.gateway.gateway_apps import MEDIA
from tests.gateway.offline import no_route

UPLOADED = b"bytes a person picked in the browser"


def notebook() -> nbformat.NotebookNode:
    cells = ["%load_ext fal_notebook", "%%fal_app media" + MEDIA, "%fal_deploy media", "%fal_playground media"]
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells], metadata={"kernelspec": kernel}
    )


def main() -> None:
    work, artifacts = Path(sys.argv[1]), Path(sys.argv[2])
    seen: dict = {"no_route": no_route()}
    (work / "state").mkdir(parents=True)
    (work / "root").mkdir()
    picked = work / "picked.txt"
    picked.write_bytes(UPLOADED)
    with running_lab(work / "state", work / "root") as lab, chromium_browser() as browser:
        nbformat.write(notebook(), lab.root / "media.ipynb")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        try:
            run_notebook(page, lab, "media.ipynb")
            playground = page.locator(".fal-pg-playground")
            playground.wait_for()

            def button(name: str):
                return playground.locator("button", has_text=re.compile(rf"^\s*{name}\s*$"))

            size = playground.locator(".fal-pg-row").filter(
                has=page.locator("code.fal-pg-name", has_text=re.compile(r"^size$"))
            )
            size.locator("input").first.fill("96")
            size.locator("input").first.press("Enter")
            button("Run").click()
            image = playground.locator(".fal-pg-output .fal-pg-image img")
            image.wait_for(timeout=TIMEOUT_MS)
            seen["image"] = {
                "src": image.get_attribute("src"),
                "size": image.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"),
            }
            playground.scroll_into_view_if_needed()
            playground.screenshot(path=str(artifacts / "playground-media-light.png"))
            set_theme(page, "dark")
            playground.screenshot(path=str(artifacts / "playground-media-dark.png"))
            set_theme(page, "light")

            picker = playground.locator(".fal-pg-header select")
            labels = picker.locator("option").all_inner_texts()
            picker.select_option(label=next(label for label in labels if label.startswith("/read")))
            row = playground.locator(".fal-pg-row").filter(
                has=page.locator("code.fal-pg-name", has_text=re.compile(r"^file$"))
            )
            with page.expect_file_chooser() as chooser:
                row.locator("button", has_text="Upload").click()
            chooser.value.set_files(str(picked))
            row.locator(".fal-pg-help", has_text="picked.txt").wait_for()
            seen["uploaded_note"] = row.locator(".fal-pg-help").inner_text()
            seen["uploaded_url"] = row.locator("input[type=text]").first.input_value()
            button("Run").click()
            answer = playground.locator(".fal-pg-output .fal-pg-text", has_text=UPLOADED.decode())
            answer.wait_for(timeout=TIMEOUT_MS)
            seen["read"] = answer.inner_text()
            playground.screenshot(path=str(artifacts / "playground-upload-light.png"))
            set_theme(page, "dark")
            playground.screenshot(path=str(artifacts / "playground-upload-dark.png"))
            set_theme(page, "light")
        finally:
            page.screenshot(path=str(artifacts / "playground-media-page.png"))
            page.close()
        seen["requests"] = sorted({re.sub(r"^(\w+://[^/]+).*", r"\1", url) for url in requests})
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
