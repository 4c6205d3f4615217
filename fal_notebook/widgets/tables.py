"""Small HTML tables for lists of apps (themable with JupyterLab's CSS variables)."""

from __future__ import annotations

from html import escape

from IPython.display import HTML

COLUMNS = ("name", "mode", "target", "status", "endpoint_id", "path")


def apps_table(rows: list[dict]) -> HTML:
    if not rows:
        return HTML("<em>No apps yet: capture one with <code>%%fal_app NAME</code>.</em>")
    head = "".join(f"<th style='text-align:left'>{c.replace('_', ' ')}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{escape(str(r.get(c) or '—'))}</td>" for c in COLUMNS) + "</tr>"
        for r in rows
    )
    return HTML(f"<table class='fal-notebook-apps'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
