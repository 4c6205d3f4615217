/**
 * "Deploy this cell with fal": a code cell without `%%fal_app` gets it (the name asked in a
 * dialog, suggested by the server: fal's name of its class, or the title of its server object, or
 * the notebook's name with the object's; the server object picked from those the cell makes), the
 * cell runs in the kernel (which captures it), then it deploys to the chosen target as a job the
 * panel follows. The dialog says what a capture would say about the cell as it would be written,
 * and its Deploy button waits until that is clean.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IFalClient } from './api';
import { ICellDescription, isAppCell, Target, TARGETS } from './model';
import { errorMessage, PanelModel } from './panelModel';
import { runActiveCell } from './notebook';

interface IChoice {
  name: string;
  entry: string;
  target: Target;
}

/** The `%%fal_app` line for a fresh cell: the name, and `--entry` unless the object is `app`. */
export function magicLine(name: string, entry: string): string {
  return `%%fal_app ${name}${entry && entry !== 'app' ? ` --entry ${entry}` : ''}`;
}

/** The dialog's body: name, server object (when the cell makes one) and target. */
class DeployCellBody extends Widget implements Dialog.IBodyWidget<IChoice> {
  constructor(
    private readonly _client: IFalClient,
    private readonly _source: string,
    private readonly _path: string,
    described: ICellDescription | null,
    target: Target
  ) {
    super();
    this.addClass('fal-DeployCell');
    const entries = described?.entries ?? [];
    this._name.value = described?.suggested ?? described?.name ?? '';
    this.node.append(this._field('App name', this._name));
    if (entries.length) {
      for (const entry of entries) {
        this._entry.append(new Option(entry, entry));
      }
      this._entry.value = entries.includes('app') ? 'app' : entries[0];
      this.node.append(this._field('Server object', this._entry));
    }
    for (const value of TARGETS) {
      this._target.append(
        new Option(value, value, value === target, value === target)
      );
    }
    this.node.append(this._field('Target', this._target));
    this._note.className = 'fal-Note';
    this._note.setAttribute('role', 'status');
    this.node.append(this._note);
    this._name.addEventListener('input', () => this._checkSoon());
    this._entry.addEventListener('change', () => this._checkSoon());
  }

  getValue(): IChoice {
    return {
      name: this._name.value.trim(),
      entry: this._entry.value,
      target: this._target.value as Target
    };
  }

  /** Say what a capture of the cell, as it would be written, would say; Deploy waits for it. */
  async check(): Promise<void> {
    const { name, entry } = this.getValue();
    const accept = this.node
      .closest('.jp-Dialog')
      ?.querySelector<HTMLButtonElement>('.jp-mod-accept');
    let problem: string | null = name ? null : 'Give the app a name.';
    if (!problem) {
      try {
        const [described] = await this._client.describeCells(
          [`${magicLine(name, entry)}\n${this._source}`],
          this._path
        );
        problem = described?.error ?? null;
      } catch (error) {
        problem = `Cannot read the cell: ${errorMessage(error)}`;
      }
    }
    this._note.textContent = problem
      ? `As it is, the cell cannot be deployed: ${problem}`
      : `"${magicLine(name, entry)}" is added at the top of the cell, which then runs and deploys.`;
    this._note.classList.toggle('fal-Error', problem !== null);
    if (accept) {
      accept.disabled = problem !== null;
    }
  }

  private _checkSoon(): void {
    window.clearTimeout(this._timer);
    this._timer = window.setTimeout(() => void this.check(), 300);
  }

  private _field(label: string, control: HTMLElement): HTMLLabelElement {
    const element = document.createElement('label');
    element.textContent = label;
    control.className = 'jp-mod-styled';
    control.setAttribute('aria-label', label);
    element.append(control);
    return element;
  }

  private _name = document.createElement('input');
  private _entry = document.createElement('select');
  private _target = document.createElement('select');
  private _note = document.createElement('p');
  private _timer = 0;
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
  const path = panel.context.path;
  if (isAppCell(source)) {
    // already an app cell: run it and deploy what it names
    const [described] = await model.client.describeCells([source], path);
    if (!described?.name || described.error) {
      Notification.error(
        described?.error ?? 'The cell does not say which app it is.',
        { autoClose: 8000 }
      );
      return;
    }
    await runAndDeploy(panel, model, described.name, model.defaultTarget);
    return;
  }
  let described: ICellDescription | null = null;
  try {
    [described] = await model.client.describeCells(
      [`%%fal_app\n${source}`],
      path
    );
  } catch (error) {
    Notification.error(`Cannot read the cell: ${errorMessage(error)}`, {
      autoClose: 8000
    });
    return;
  }
  const body = new DeployCellBody(
    model.client,
    source,
    path,
    described,
    model.defaultTarget
  );
  const dialog = showDialog({
    title: 'Deploy this cell with fal',
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Deploy' })],
    focusNodeSelector: 'input'
  });
  requestAnimationFrame(() => void body.check());
  const result = await dialog;
  if (!result.button.accept || !result.value) {
    return;
  }
  const { name, entry, target } = result.value;
  cell.model.sharedModel.setSource(`${magicLine(name, entry)}\n${source}`);
  panel.content.activeCellIndex = panel.content.widgets.indexOf(cell);
  await runAndDeploy(panel, model, name, target);
}

async function runAndDeploy(
  panel: NotebookPanel,
  model: PanelModel,
  name: string,
  target: Target
): Promise<void> {
  const ran = await runActiveCell(panel).catch(error => {
    Notification.error(errorMessage(error), { autoClose: 8000 });
    return false;
  });
  if (!ran) {
    Notification.error(
      `The cell of ${name} did not run cleanly: see its output.`,
      { autoClose: 8000 }
    );
    return;
  }
  await model.startJob(name, target);
}
