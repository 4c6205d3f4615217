"""``%fal_login``: a password field that keeps a fal key for the kernel session (or saves it in a
fal profile). The key is cleared from the widget as soon as it is read, so it is never synced back
to the browser or saved with the notebook."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from .. import credentials
from ..errors import FalNotebookError
from ..secrets import redact


class LoginForm:
    """The login form; ``.widget`` is the root widget, ``submit()`` is what the button does."""

    def __init__(self, *, save: bool = False, profile: str | None = None) -> None:
        self.profile = profile
        self.key = widgets.Password(placeholder="<key_id>:<key_secret>", description="fal key")
        self.save = widgets.Checkbox(value=save, description="Save in my fal profile", indent=False)
        self.button = widgets.Button(description="Log in", button_style="primary", icon="key")
        self.status = widgets.HTML()
        self.credentials: credentials.FalCredentials | None = None
        self.button.on_click(lambda _button: self.submit())
        self.key.continuous_update = False
        self.widget = widgets.VBox(
            [
                widgets.HTML(
                    f'Paste a key from <a href="{credentials.KEYS_PAGE}" target="_blank">{credentials.KEYS_PAGE}</a>.'
                ),
                widgets.HBox([self.key, self.button]),
                self.save,
                self.status,
            ]
        )
        self._show_current()

    def submit(self) -> credentials.FalCredentials | None:
        entered, self.key.value = self.key.value, ""
        if not entered.strip():
            self._say("Paste your fal key first.", error=True)
            return None
        try:
            self.credentials = credentials.login(entered, save=self.save.value, profile=self.profile)
        except FalNotebookError as exc:
            self._say(str(exc), error=True)
            return None
        kept = "saved in " + self.credentials.source if self.save.value else "kept for this kernel session"
        self._say(f"Logged in with fal key {self.credentials.masked}, {kept}.")
        return self.credentials

    def _show_current(self) -> None:
        try:
            current = credentials.user_credentials()
        except FalNotebookError as exc:
            self._say(str(exc), error=True)
            return
        if current:
            self._say(f"Currently using {current}.")
        elif credentials.logged_in_as_user():
            self._say("Currently using the login saved by `fal auth login`.")

    def _say(self, message: str, *, error: bool = False) -> None:
        color = "var(--jp-error-color1, #c62828)" if error else "var(--jp-ui-font-color1, inherit)"
        text = html.escape(redact(message), quote=False)
        self.status.value = f'<span style="color: {color}">{text}</span>'

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def fal_login(*, save: bool = False, profile: str | None = None) -> LoginForm:
    """The form ``%fal_login`` displays (``save`` pre-ticks "Save in my fal profile")."""
    return LoginForm(save=save, profile=profile)
