"""The %fal_login form: a password field whose key is kept for the session and never shown."""

from __future__ import annotations

import json
import os

import pytest
from fal.auth import key_credentials

from fal_notebook.widgets.login import fal_login

pytestmark = pytest.mark.fal_sdk

FAKE_KEY_ID = "fnbkeyid-0001"
FAKE_KEY_SECRET = "fnb-secret-Q7x9-DO-NOT-LEAK-5521"
FAKE_KEY = f"{FAKE_KEY_ID}:{FAKE_KEY_SECRET}"


def everything_shown(form) -> str:
    """The state of every widget of the form, as it is synced to the browser and saved with the notebook."""

    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    return json.dumps([w.get_state() for w in walk(form.widget)], default=str)


def test_login_keeps_the_key_for_the_session_and_clears_the_field(fal_env):
    form = fal_login()
    assert form.key.value == "" and form.status.value == ""
    form.key.value = FAKE_KEY
    form.button.click()
    assert os.environ["FAL_KEY"] == FAKE_KEY
    assert form.key.value == ""
    assert "Logged in with fal key fnbk…, kept for this kernel session." in form.status.value
    shown = everything_shown(form)
    assert FAKE_KEY_SECRET not in shown and FAKE_KEY_ID not in shown
    assert not (fal_env / ".fal").exists()


def test_login_can_save_in_a_fal_profile(fal_env, monkeypatch):
    form = fal_login(save=True)
    assert form.save.value is True
    form.key.value = FAKE_KEY
    form.submit()
    assert "saved in fal profile 'default'" in form.status.value
    monkeypatch.delenv("FAL_KEY")
    assert key_credentials() == (FAKE_KEY_ID, FAKE_KEY_SECRET)  # fal itself now finds it


def test_a_malformed_key_is_refused_without_echoing_it(fal_env):
    form = fal_login()
    form.key.value = "abcdefghijklmnop-no-colon"
    assert form.submit() is None
    assert "not in the form &lt;key_id&gt;:&lt;key_secret&gt;" in form.status.value
    assert "abcdefghijklmnop" not in everything_shown(form)
    assert "FAL_KEY" not in os.environ
    form.submit()
    assert "Paste your fal key first." in form.status.value


def test_the_form_says_which_key_is_in_use(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    form = fal_login()
    assert "Currently using fal key fnbk… (from the FAL_KEY environment variable)." in form.status.value
    assert FAKE_KEY_SECRET not in everything_shown(form)
