/**
 * The panel's live state: the server's snapshot (streamed while the panel is visible), the open
 * notebook's app cells (read from its model as the user types, no save needed), and deploy jobs
 * (each followed on its own stream until it ends, visible or not).
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, IFalClient } from './api';
import {
  applyEvent,
  buildSections,
  Env,
  ICellApp,
  IJobSummary,
  IJobView,
  IRowView,
  ISections,
  ISnapshot,
  jobFromSummary,
  readableError,
  Section,
  Target
} from './model';
import { appCells, notebookCells } from './notebook';

/** How the model tells the user what happened (JupyterLab's notifications, in the app). */
export interface INotifier {
  success(message: string): void;
  info(message: string): void;
  /** An error toast that closes by itself; `details` (the full text) behind its "Show" action. */
  error(message: string, details?: string): void;
}

/** Wait this long after the last keystroke before asking the server about the app cells. */
const DESCRIBE_DELAY_MS = 400;
/** Wait this long after a cell ran before asking for the state again (while the panel is hidden). */
const REFRESH_DELAY_MS = 500;
/** Reconnect the live stream after this long, doubling up to the maximum. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 15000;

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class PanelModel {
  constructor(
    readonly client: IFalClient,
    private readonly _notify: INotifier
  ) {}

  /** Emitted whenever anything the panel shows changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  snapshot: ISnapshot | null = null;
  cellApps: ICellApp[] = [];
  /** The latest job of each app, by app name. */
  jobs = new Map<string, IJobView>();
  /** The live stream's trouble, shown at the top of the panel (null: connected). */
  error: string | null = null;
  /** The last failed action of each app (shown in its row until the next action). */
  actionErrors = new Map<string, string>();
  notebook: NotebookPanel | null = null;
  defaultTarget: Target = 'local';
  /** True once the live stream delivered a snapshot since the panel was shown. */
  live = false;
  /** The sections the user collapsed. */
  collapsed = new Set<Section>();

  toggleSection(section: Section): void {
    if (!this.collapsed.delete(section)) {
      this.collapsed.add(section);
    }
    this._changed.emit();
  }

  get sections(): ISections {
    return buildSections(this.cellApps, this.snapshot?.apps ?? [], this.jobs);
  }

  get visible(): boolean {
    return this._visible;
  }

  /** Follow the server while the panel is visible; rest when it is hidden. */
  setVisible(visible: boolean): void {
    if (visible === this._visible) {
      return;
    }
    this._visible = visible;
    if (visible) {
      void this._connect();
      this._describeSoon(0);
    } else {
      this.live = false;
      this._live?.abort();
      this._live = null;
    }
  }

  /** Fetch the state once (the status bar's view while the panel is hidden). */
  async refresh(): Promise<void> {
    try {
      this._onSnapshot(await this.client.status());
    } catch (error) {
      this.error = errorMessage(error);
      this._changed.emit();
    }
  }

  /**
   * Fetch the state once, soon (calls within the delay make one request): for the status bar,
   * after something that may have changed it, while the panel is hidden.
   */
  refreshSoon(delay = REFRESH_DELAY_MS): void {
    if (this._visible) {
      return; // the live stream follows the changes
    }
    window.clearTimeout(this._refreshTimer);
    this._refreshTimer = window.setTimeout(() => void this.refresh(), delay);
  }

  setNotebook(panel: NotebookPanel | null): void {
    if (panel === this.notebook) {
      return;
    }
    this.notebook?.model?.contentChanged.disconnect(this._onContent, this);
    this.notebook = panel;
    this._described = '';
    this.cellApps = [];
    panel?.model?.contentChanged.connect(this._onContent, this);
    if (panel && !panel.model) {
      void panel.context.ready.then(() => {
        if (this.notebook === panel) {
          panel.model?.contentChanged.connect(this._onContent, this);
          this._describeSoon(0);
        }
      });
    }
    this._describeSoon(0);
    this._changed.emit();
  }

  /** Deploy the row's app; a row of the open notebook is captured from its current cells first. */
  async deploy(row: IRowView, target: Target, env: Env = ''): Promise<void> {
    await this.startJob(
      row.name,
      target,
      row.section === 'notebook' && this.notebook !== null,
      env
    );
  }

  /** Start a deploy job (`fromNotebook`: captured from the open notebook's cells) and follow it. */
  async startJob(
    name: string,
    target: Target,
    fromNotebook = false,
    env: Env = ''
  ): Promise<void> {
    this._clearError(name);
    const notebook = fromNotebook ? this.notebook : null;
    try {
      const summary = await this.client.deploy(name, {
        target,
        ...(env && target === 'local' ? { env } : {}),
        ...(notebook
          ? {
              notebook: {
                path: notebook.context.path,
                cells: notebookCells(notebook)
              }
            }
          : {})
      });
      this._follow(jobFromSummary(summary));
    } catch (error) {
      this._fail(name, `Deploying ${name} failed`, error);
    }
  }

  /** Cancel an app's running deploy, wherever it started (the panel, a kernel, the CLI). */
  async cancel(name: string): Promise<void> {
    const job = this.jobs.get(name);
    if (!job) {
      return;
    }
    await this.cancelJob(job.id, name);
  }

  /** Cancel a job by its id (the notebook card's Cancel button, while its kernel is busy). */
  async cancelJob(id: string, name = 'the app'): Promise<void> {
    try {
      await this.client.cancelJob(id);
    } catch (error) {
      this._fail(name, `Cancelling the deploy of ${name} failed`, error);
    }
  }

  async stop(name: string): Promise<void> {
    this._clearError(name);
    try {
      await this.client.stop(name);
      this._notify.info(`${name} stopped.`);
      await this.refresh();
    } catch (error) {
      this._fail(name, `Stopping ${name} failed`, error);
    }
  }

  /** Read the open notebook's app cells again (after their project's configuration changed). */
  describeAgain(): void {
    this._described = '';
    this._describeSoon(0);
  }

  dispose(): void {
    this.setVisible(false);
    this.setNotebook(null);
    for (const abort of this._following.values()) {
      abort.abort();
    }
    Signal.clearData(this);
  }

  // -- the live stream -----------------------------------------------------------------------
  private async _connect(): Promise<void> {
    let wait = RETRY_MS;
    while (this._visible) {
      const abort = new AbortController();
      this._live = abort;
      try {
        await this.client.followSnapshots(snapshot => {
          wait = RETRY_MS;
          this.live = true;
          this._onSnapshot(snapshot);
        }, abort.signal);
      } catch (error) {
        if (abort.signal.aborted) {
          return;
        }
        this.live = false;
        this.error = `The fal-notebook server extension does not answer: ${errorMessage(error)}`;
        this._changed.emit();
      }
      if (abort.signal.aborted || !this._visible) {
        return;
      }
      await new Promise(resolve => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  }

  private _onSnapshot(snapshot: ISnapshot): void {
    this.error = snapshot.error ?? null;
    if (!snapshot.error) {
      this.snapshot = snapshot;
      for (const summary of snapshot.jobs) {
        const known = this.jobs.get(summary.name);
        if (summary.state === 'running' && !this._following.has(summary.id)) {
          this._follow(
            known?.id === summary.id ? known : jobFromSummary(summary)
          );
        } else if (summary.state !== 'running' && known?.id !== summary.id) {
          this._restore(summary); // a job that ended before this page was loaded: its log too
        }
      }
    }
    this._changed.emit();
  }

  // -- jobs ----------------------------------------------------------------------------------
  private _follow(job: IJobView): void {
    const current = this.jobs.get(job.name);
    if (!current || current.id !== job.id) {
      this.jobs.set(job.name, job);
    }
    if (this._following.has(job.id) || job.state !== 'running') {
      this._changed.emit();
      return;
    }
    const abort = new AbortController();
    this._following.set(job.id, abort);
    this._changed.emit();
    const since = this.jobs.get(job.name)?.seq ?? 0;
    void this.client
      .followJob(
        job.id,
        since,
        event => {
          const latest = this.jobs.get(job.name);
          if (!latest || latest.id !== job.id) {
            return;
          }
          const next = applyEvent(latest, event);
          this.jobs.set(job.name, next);
          if (event.kind === 'end') {
            this._ended(next);
          }
          this._changed.emit();
        },
        abort.signal
      )
      .catch(error => {
        if (!abort.signal.aborted) {
          this._fail(
            job.name,
            `Following the deploy of ${job.name} failed`,
            error
          );
        }
      })
      .finally(() => this._following.delete(job.id));
  }

  /** Show an ended job with its log (read once). */
  private _restore(summary: IJobSummary): void {
    this.jobs.set(summary.name, jobFromSummary(summary));
    void this.client
      .job(summary.id)
      .then(detail => {
        let job = jobFromSummary(detail);
        for (const event of detail.log) {
          job = applyEvent(job, event);
        }
        if (this.jobs.get(summary.name)?.id === summary.id) {
          this.jobs.set(summary.name, job);
          this._changed.emit();
        }
      })
      .catch(() => undefined); // the summary alone still shows how it ended
  }

  private _ended(job: IJobView): void {
    const where = job.origin === 'panel' ? '' : ` (started by ${job.origin})`;
    if (job.state === 'ready') {
      this._notify.success(
        `${job.name} is ready on ${job.target}: ${job.deployment?.endpoint_id ?? ''}${where}`
      );
    } else if (job.state === 'cancelled') {
      this._notify.info(
        job.error ?? `The deploy of ${job.name} was cancelled.`
      );
    } else {
      const error = job.error ?? `Deploying ${job.name} failed.`;
      const row = this.snapshot?.apps.find(app => app.name === job.name);
      const { key, text } = readableError(error, row?.relpath ?? null);
      this._notify.error(`Deploying ${job.name} failed: ${key}`, text);
    }
    void this.refresh();
  }

  // -- the open notebook ---------------------------------------------------------------------
  private _onContent(): void {
    this._describeSoon(DESCRIBE_DELAY_MS);
  }

  private _describeSoon(delay: number): void {
    window.clearTimeout(this._describeTimer);
    if (!this._visible) {
      return; // done when the panel shows again
    }
    this._describeTimer = window.setTimeout(() => void this._describe(), delay);
  }

  private async _describe(): Promise<void> {
    const panel = this.notebook;
    const cells = panel ? appCells(panel) : [];
    const key = JSON.stringify(cells);
    if (key === this._described) {
      return;
    }
    this._described = key;
    if (!cells.length) {
      this.cellApps = [];
      this._changed.emit();
      return;
    }
    try {
      const described = await this.client.describeCells(
        cells.map(cell => cell.source),
        panel?.context.path
      );
      if (panel !== this.notebook || key !== this._described) {
        return; // the notebook changed meanwhile
      }
      this.cellApps = cells.map((cell, index) => ({
        cellId: cell.cellId,
        ...(described[index] ?? {
          name: null,
          mode: null,
          options: {},
          error: 'Not an app cell.'
        })
      }));
    } catch (error) {
      this._described = '';
      this.error = errorMessage(error);
    }
    this._changed.emit();
  }

  /** Show a failed action inline (in the app's row) and as a notification. */
  private _fail(name: string, what: string, error: unknown): void {
    const message =
      error instanceof ApiError ? error.message : errorMessage(error);
    this.actionErrors.set(name, `${what}: ${message}`);
    this._notify.error(`${what}: ${message}`);
    this._changed.emit();
  }

  private _clearError(name: string): void {
    if (this.actionErrors.delete(name)) {
      this._changed.emit();
    }
  }

  private _changed = new Signal<this, void>(this);
  private _visible = false;
  private _live: AbortController | null = null;
  private _following = new Map<string, AbortController>();
  private _described = '';
  private _describeTimer = 0;
  private _refreshTimer = 0;
}
