"""The Playground's stylesheet: JupyterLab's theme variables only, so light and dark themes both read
well (outside JupyterLab the colours fall back to the surrounding text colour)."""

from __future__ import annotations

import ipywidgets as W

CSS = """
.fal-pg { color: var(--jp-ui-font-color1, currentColor); font-family: var(--jp-ui-font-family, inherit);
  border: 1px solid var(--jp-border-color2, currentColor); border-radius: 6px; padding: 10px 12px;
  background: var(--jp-layout-color1, transparent); max-width: 100%; }
.fal-pg .widget-html > .widget-html-content { height: auto; min-height: 0; line-height: 1.4; }
.fal-pg .widget-html:has(> .widget-html-content:empty) { display: none; }
.fal-pg-title { font-size: var(--jp-ui-font-size2, 1.1em); font-weight: 600; }
.fal-pg code, .fal-pg-code, .fal-pg-code textarea, .fal-pg pre {
  font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, 0.9em); }
.fal-pg-name { color: var(--jp-ui-font-color2, currentColor); background: var(--jp-layout-color2, transparent);
  border-radius: 3px; padding: 0 4px; font-size: 0.85em; }
.fal-pg-row, .fal-pg-item { border-left: 3px solid transparent; padding: 2px 0 4px 8px; margin: 2px 0; }
.fal-pg-item { border: 1px solid var(--jp-border-color2, currentColor); border-left-width: 3px;
  border-radius: 4px; padding: 4px 6px; }
.fal-pg-row.fal-pg-invalid, .fal-pg-item.fal-pg-invalid { border-left-color: var(--jp-error-color1, currentColor); }
.fal-pg-row .widget-inline-hbox { max-width: calc(100% - 4px); box-sizing: border-box; }
.fal-pg-label { font-weight: 600; }
.fal-pg-required { color: var(--jp-error-color1, currentColor); font-weight: 700; }
.fal-pg-help { color: var(--jp-ui-font-color2, currentColor); font-size: var(--jp-ui-font-size0, 0.85em);
  line-height: 1.35; white-space: pre-wrap; }
.fal-pg-error { color: var(--jp-error-color1, currentColor); font-size: var(--jp-ui-font-size1, 0.9em); }
.fal-pg-message .fal-pg-error { padding: 4px 0; }
.fal-pg-header { align-items: center; gap: 8px; }
.fal-pg-preview img, .fal-pg-preview video { max-height: 160px; max-width: 100%; border-radius: 4px; }
.fal-pg-status { font-size: var(--jp-ui-font-size1, 0.95em); }
.fal-pg-status-running { color: var(--jp-brand-color1, currentColor); }
.fal-pg-status-completed { color: var(--jp-success-color1, currentColor); }
.fal-pg-status-failed { color: var(--jp-error-color1, currentColor); }
.fal-pg-status-cancelled { color: var(--jp-warn-color1, currentColor); }
.fal-pg-logs { max-height: 180px; overflow: auto; margin: 4px 0; padding: 6px 8px; white-space: pre-wrap;
  background: var(--jp-layout-color2, transparent); color: var(--jp-content-font-color1, currentColor);
  border-radius: 4px; }
.fal-pg-section { margin: 6px 0; }
.fal-pg-section-title { color: var(--jp-ui-font-color2, currentColor); font-size: var(--jp-ui-font-size0, 0.85em);
  text-transform: uppercase; letter-spacing: 0.04em; margin-bottom: 2px; }
.fal-pg-gallery { display: flex; flex-wrap: wrap; gap: 8px; }
.fal-pg-media { margin: 0; }
.fal-pg-image img { max-width: 100%; max-height: 360px; border-radius: 4px;
  border: 1px solid var(--jp-border-color2, currentColor); }
.fal-pg-video video { max-width: 100%; max-height: 360px; }
.fal-pg-text { white-space: pre-wrap; line-height: 1.45; color: var(--jp-content-font-color1, currentColor); }
.fal-pg-json { font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, 0.9em);
  line-height: 1.4; }
.fal-pg-json summary { cursor: pointer; }
.fal-pg-json-children { padding-left: 14px; border-left: 1px dotted var(--jp-border-color2, currentColor); }
.fal-pg-json-key { color: var(--jp-mirror-editor-property-color, currentColor); }
.fal-pg-json-string { color: var(--jp-mirror-editor-string-color, currentColor); word-break: break-all; }
.fal-pg-json-number { color: var(--jp-mirror-editor-number-color, currentColor); }
.fal-pg-json-literal { color: var(--jp-mirror-editor-keyword-color, currentColor); }
.fal-pg pre.fal-pg-snippet { background: var(--jp-layout-color2, transparent); padding: 8px 10px; border-radius: 4px;
  overflow: auto; max-height: 420px; color: var(--jp-content-font-color1, currentColor); user-select: text;
  white-space: pre; }
.fal-pg-history-entry { border-bottom: 1px solid var(--jp-border-color2, currentColor); padding: 4px 0; }
"""


def stylesheet() -> W.HTML:
    return W.HTML(f"<style>{CSS}</style>", layout=W.Layout(display="none"))
