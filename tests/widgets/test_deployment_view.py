"""A Deployment displays as a card: status, endpoint id, URLs, and buttons that act on it."""

import time

from fal_notebook.backends.base import Deployment
from fal_notebook.widgets.deployment import deployment_view


class Recorded(Deployment):
    """A deployment whose operations are recorded instead of reaching a backend."""

    calls: list

    def logs(self, follow=False):
        self.calls.append("logs")
        return ["line 1", "line 2"]

    def stop(self):
        self.calls.append("stop")
        self.status = "stopped"

    def playground(self, endpoint="/"):
        self.calls.append("playground")
        return "a playground"


def make(status="ready"):
    dep = Recorded(
        "demo", "local", "local/demo", "http://127.0.0.1:9/local/demo", "http://127.0.0.1:9/queue/local/demo", status
    )
    dep.calls = []
    return dep


def buttons(view):
    return {b.description: b for b in view.children[2].children}


def test_card_shows_what_and_where():
    dep = make()
    view = deployment_view(dep)
    text = view.children[1].value
    assert "demo" in text and "ready" in text and "local/demo" in text and "http://127.0.0.1:9/queue/local/demo" in text
    assert dep._repr_mimebundle_()["text/plain"].startswith("Deployment(name='demo'")


def test_buttons_act_on_the_deployment():
    dep = make()
    view = deployment_view(dep)
    found = buttons(view)
    found["Logs"].click()
    found["Playground"].click()
    found["Stop"].click()
    assert dep.calls == ["logs", "playground", "stop"]
    assert found["Stop"].disabled and found["Playground"].disabled


def test_playground_needs_a_ready_deployment():
    assert buttons(deployment_view(make("failed")))["Playground"].disabled
    assert not buttons(deployment_view(make("ready")))["Playground"].disabled


def test_a_crash_looping_deployment_shows_when_it_tries_again_and_why():
    dep = make("crash-looping")
    dep.detail.next_attempt = time.mktime((2026, 11, 30, 14, 5, 9, 0, 0, -1))
    dep.detail.last_exit = "RuntimeError: out of memory while loading the model"
    text = deployment_view(dep).children[1].value
    assert "crash-looping" in text and "fal-pg-status-failed" in text
    assert "next attempt at 14:05:09; last exit: RuntimeError: out of memory while loading the model" in text
