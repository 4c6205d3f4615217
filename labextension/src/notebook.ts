/**
 * What the panel does with the open notebook: read its cells (saved or not), go to a cell, and
 * insert and run a cell (with `%load_ext fal_notebook` done quietly first).
 */
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { isAppCell } from './model';

export interface ICellSource {
  cell_type: string;
  source: string;
}

/** Every cell, as the server's capture wants them. */
export function notebookCells(panel: NotebookPanel): ICellSource[] {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return [];
  }
  return Array.from(cells).map(cell => ({
    cell_type: cell.type,
    source: cell.sharedModel.getSource()
  }));
}

/** The `%%fal_app` code cells: their ids and sources. */
export function appCells(
  panel: NotebookPanel
): { cellId: string; source: string }[] {
  const cells = panel.content.model?.cells;
  if (!cells) {
    return [];
  }
  return Array.from(cells)
    .filter(
      cell => cell.type === 'code' && isAppCell(cell.sharedModel.getSource())
    )
    .map(cell => ({ cellId: cell.id, source: cell.sharedModel.getSource() }));
}

export function cellIndex(panel: NotebookPanel, cellId: string): number {
  return panel.content.widgets.findIndex(cell => cell.model.id === cellId);
}

/** Make the cell active and scroll it into view. */
export async function goToCell(
  panel: NotebookPanel,
  cellId: string
): Promise<void> {
  const index = cellIndex(panel, cellId);
  if (index === -1) {
    return;
  }
  panel.content.activeCellIndex = index;
  await panel.content.scrollToCell(panel.content.widgets[index], 'start');
}

/** Wait for the kernel and load the extension in it without any output. */
export async function loadExtension(panel: NotebookPanel): Promise<void> {
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error(`${panel.title.label} has no kernel: start one first.`);
  }
  await kernel.requestExecute({
    code: '%load_ext fal_notebook',
    silent: true,
    store_history: false
  }).done;
}

/** Run the active cell (after loading the extension); true if it ran without an error. */
export async function runActiveCell(panel: NotebookPanel): Promise<boolean> {
  await loadExtension(panel);
  return NotebookActions.run(panel.content, panel.sessionContext);
}

/**
 * Put `code` in a cell below the cell at `index` (reusing that cell when it already holds
 * exactly this code) and run it.
 */
export async function insertBelowAndRun(
  panel: NotebookPanel,
  index: number,
  code: string
): Promise<boolean> {
  const notebook = panel.content;
  const next = notebook.widgets[index + 1];
  if (next && next.model.sharedModel.getSource().trim() === code) {
    notebook.activeCellIndex = index + 1;
  } else {
    notebook.activeCellIndex = index;
    NotebookActions.insertBelow(notebook);
    notebook.activeCell?.model.sharedModel.setSource(code);
  }
  const ok = await runActiveCell(panel);
  if (notebook.activeCell) {
    await notebook.scrollToCell(notebook.activeCell, 'start');
  }
  return ok;
}
