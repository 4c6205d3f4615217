/**
 * The Logs viewer: a main-area tab that follows an app's log live (a stream that is open only
 * while the tab is visible), keeping the last lines, and scrolling with them unless the reader
 * scrolled up.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { IFalClient } from './api';
import { falIcon } from './icons';
import { errorMessage } from './panelModel';

/** Lines a viewer keeps (older ones are dropped from the view, not from the log). */
export const LOG_LINES_KEPT = 5000;

class LogView extends Widget {
  constructor(
    readonly app: string,
    private readonly _client: IFalClient
  ) {
    super();
    this.addClass('fal-Logs');
    this._status.className = 'fal-Logs-status';
    this._status.setAttribute('role', 'status');
    this._pre.className = 'fal-Logs-lines';
    this._pre.tabIndex = 0;
    this._pre.setAttribute('aria-label', `Log of ${app}`);
    this.node.append(this._status, this._pre);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible && !this._abort) {
      void this._follow();
    }
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this._abort) {
      void this._follow();
    }
  }

  protected onAfterHide(msg: Message): void {
    this._stop();
    super.onAfterHide(msg);
  }

  protected onBeforeDetach(msg: Message): void {
    this._stop();
    super.onBeforeDetach(msg);
  }

  private _stop(): void {
    this._abort?.abort();
    this._abort = null;
  }

  private async _follow(): Promise<void> {
    const abort = new AbortController();
    this._abort = abort;
    this._pre.textContent = '';
    this._lines = 0;
    this._status.textContent = `Following the log of ${this.app}...`;
    try {
      await this._client.followLogs(
        this.app,
        line => this._append(line),
        message => (this._status.textContent = message),
        abort.signal
      );
      this._status.textContent = `The log of ${this.app} ended.`;
    } catch (error) {
      if (!abort.signal.aborted) {
        this._status.textContent = `Cannot follow the log of ${this.app}: ${errorMessage(error)}`;
      }
    } finally {
      if (this._abort === abort) {
        this._abort = null;
      }
    }
  }

  private _append(line: string): void {
    const pre = this._pre;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.append(line + '\n');
    this._lines += 1;
    if (this._lines > LOG_LINES_KEPT && pre.firstChild) {
      pre.firstChild.remove();
      this._lines -= 1;
    }
    if (this._lines === 1) {
      this._status.textContent = `Following the log of ${this.app} (live).`;
    }
    if (atBottom) {
      pre.scrollTop = pre.scrollHeight;
    }
  }

  private _pre = document.createElement('pre');
  private _status = document.createElement('div');
  private _abort: AbortController | null = null;
  private _lines = 0;
}

/** A main-area tab with the app's log (one per app: `id` says which). */
export function createLogViewer(
  app: string,
  client: IFalClient
): MainAreaWidget<LogView> {
  const widget = new MainAreaWidget({ content: new LogView(app, client) });
  widget.id = `fal-notebook-logs-${app}`;
  widget.title.label = `Logs: ${app}`;
  widget.title.icon = falIcon;
  widget.title.closable = true;
  return widget;
}
