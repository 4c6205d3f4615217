/**
 * "Deploy this cell with fal": a code cell without `%%fal_app` gets it (the name asked in a
 * dialog, fal's kebab-case name of its class suggested by the server), the cell runs in the
 * kernel (which captures it), then it deploys to the chosen target as a job the panel follows.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { requestAPI } from './api';
import { ICellApp, isAppCell, Target, TARGETS } from './model';
import { errorMessage, PanelModel } from './panelModel';
import { runActiveCell } from './notebook';

type Described = Omit<ICellApp, 'cellId'> | null;

async function describe(source: string): Promise<Described> {
  const [described] = await requestAPI<Described[]>('notebook/apps', 'POST', {
    cells: [source]
  });
  return described;
}

/** The dialog's body: the app's name (asked only when the cell has no `%%fal_app` yet) and the target. */
class DeployCellBody
  extends Widget
  implements Dialog.IBodyWidget<{ name: string; target: Target }>
{
  constructor(
    name: string,
    askName: boolean,
    note: string | null,
    target: Target
  ) {
    super();
    this.addClass('fal-DeployCell');
    const nameLabel = document.createElement('label');
    nameLabel.textContent = 'App name';
    this._name.className = 'jp-mod-styled';
    this._name.value = name;
    this._name.setAttribute('aria-label', 'App name');
    this._name.readOnly = !askName;
    nameLabel.append(this._name);
    const targetLabel = document.createElement('label');
    targetLabel.textContent = 'Target';
    this._target.className = 'jp-mod-styled';
    this._target.setAttribute('aria-label', 'Target');
    for (const value of TARGETS) {
      this._target.append(
        new Option(value, value, value === target, value === target)
      );
    }
    targetLabel.append(this._target);
    this.node.append(nameLabel, targetLabel);
    if (note) {
      const para = document.createElement('p');
      para.className = 'fal-Note';
      para.textContent = note;
      this.node.append(para);
    }
  }

  getValue(): { name: string; target: Target } {
    return {
      name: this._name.value.trim(),
      target: this._target.value as Target
    };
  }

  private _name = document.createElement('input');
  private _target = document.createElement('select');
}

export async function deployCell(
  panel: NotebookPanel,
  model: PanelModel
): Promise<void> {
  const cell = panel.content.activeCell;
  if (!cell || cell.model.type !== 'code') {
    Notification.warning('Select a code cell to deploy it with fal.', {
      autoClose: 4000
    });
    return;
  }
  const source = cell.model.sharedModel.getSource();
  const isApp = isAppCell(source);
  let described: Described = null;
  try {
    described = await describe(isApp ? source : `%%fal_app\n${source}`);
  } catch (error) {
    Notification.error(`Cannot read the cell: ${errorMessage(error)}`, {
      autoClose: false
    });
    return;
  }
  const note = isApp
    ? (described?.error ?? null)
    : described?.error
      ? `As it is, the cell would fail to capture: ${described.error}`
      : `A %%fal_app line with this name is added at the top of the cell.`;
  const result = await showDialog({
    title: 'Deploy this cell with fal',
    body: new DeployCellBody(
      described?.name ?? '',
      !isApp,
      note,
      model.defaultTarget
    ),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })],
    focusNodeSelector: 'input'
  });
  if (!result.button.accept || !result.value) {
    return;
  }
  const { name, target } = result.value;
  if (!name) {
    Notification.error(
      'The cell does not say which app it is: give it a name.',
      { autoClose: false }
    );
    return;
  }
  if (!isApp) {
    cell.model.sharedModel.setSource(`%%fal_app ${name}\n${source}`);
  }
  panel.content.activeCellIndex = panel.content.widgets.indexOf(cell);
  const ran = await runActiveCell(panel).catch(error => {
    Notification.error(errorMessage(error), { autoClose: false });
    return false;
  });
  if (!ran) {
    Notification.error(
      `The cell of ${name} did not run cleanly: see its output.`,
      {
        autoClose: false
      }
    );
    return;
  }
  await model.startJob(name, { target });
}
