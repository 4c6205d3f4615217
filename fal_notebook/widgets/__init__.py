"""The Playground widget: playground.py (the whole), fields.py (one control per field kind),
outputs.py (media and JSON), snippets.py (code), history.py, style.py (theme-aware CSS);
login.py is the ``%fal_login`` form."""
