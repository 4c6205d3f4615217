/**
 * The panel's state logic, pure (no JupyterLab imports): what the server sends, how deploy jobs
 * advance with their progress events, and how the rows of the three sections are built.
 */

import { JobState, Status, STEP_TITLES, Target, TARGETS } from './vocabulary';

export { STEP_TITLES, TARGETS };
export type { JobState, Status, Target };
/** Where local runners run; '' leaves it to the server (FAL_NOTEBOOK_LOCAL_ENV, else isolated). */
export type Env = '' | 'kernel' | 'isolated';
export const ENVS: Env[] = ['', 'kernel', 'isolated'];
export type Section = 'notebook' | 'deployed' | 'folders';

/** A row of `GET apps` (fal_notebook.backends.list_apps, plus `relpath`). */
export interface IAppRow {
  name: string;
  mode: string | null;
  path: string | null;
  relpath: string | null;
  target: Target | null;
  status: Status;
  endpoint_id: string | null;
  url?: string | null;
  queue_url?: string | null;
  runners?: number | null;
  queued?: number | null;
  /** The GPUs its runners hold, one entry per runner and GPU. */
  gpus?: IRunnerGpu[];
  /** Why a runner waits to start (a GPU none has free). */
  waiting?: string | null;
  error?: string | null;
  /** Whether the serving revision serves an OpenAPI schema (null: not known, e.g. on fal). */
  openapi?: boolean | null;
}

/**
 * A GPU a runner holds (fal_notebook.backends.base.LocalDetail.gpus); memory in MiB. `line` is how
 * to show it, written by fal_notebook.backends.list_apps (base.held_gpu_line), as the CLI shows it.
 */
export interface IRunnerGpu {
  runner: string;
  index: number;
  uuid: string;
  name: string | null;
  memory_mib: number | null;
  memory_used_mib: number | null;
  line: string;
}

/** The environment picker's label of ``env`` (the server's default named). */
export function envLabel(env: Env, serverDefault: string | undefined): string {
  return env ? env : `default (${serverDefault ?? 'isolated'})`;
}

/** `GET apps/<name>`: the row, with its configuration and files. */
export interface IAppDetail extends Partial<IAppRow> {
  config?: Record<string, unknown>;
  files?: string[];
}

/** `PUT apps/<name>/config`'s answer. */
export interface IConfigSaved {
  name: string;
  config: Record<string, unknown>;
  changed: string[];
}

/** A `%%fal_app` cell as `POST notebook/apps` describes it (fal_notebook.capture.notebook). */
export interface ICellDescription {
  name: string | null;
  mode: string | null;
  options: Record<string, unknown>;
  error: string | null;
  /** The keys that will deploy and their values: the line's, and those changed in pyproject.toml. */
  settings?: Record<string, unknown>;
  /** The keys of `settings` whose value comes from pyproject.toml rather than the cell. */
  from_file?: string[];
  /** Keys changed both in the cell and in pyproject.toml since the last capture. */
  conflict?: string;
  /** The cell's server objects (`api = FastAPI()`). */
  entries?: string[];
  /** A name for the app (fal's name of its class, or the title of its server object...). */
  suggested?: string | null;
}

/** A `%%fal_app` cell of the open notebook. */
export interface ICellApp extends ICellDescription {
  cellId: string;
}

export interface IDeploymentInfo {
  name: string;
  target: Target;
  endpoint_id: string;
  url: string;
  queue_url: string;
  status: Status;
}

/** A deploy job as the server summarises it (fal_notebook.jobs.DeployJob.summary). */
export interface IJobSummary {
  id: string;
  name: string;
  target: Target;
  /** Who started it: the panel, a notebook's `%fal_deploy`, the CLI or the Python API. */
  origin?: 'panel' | 'magic' | 'cli' | 'api';
  state: JobState;
  steps: string[];
  step: string | null;
  /** The fraction of the whole deploy done (steps done, plus the known part of the current one). */
  progress: number | null;
  message: string | null;
  events: number;
  deployment: IDeploymentInfo | null;
  error: string | null;
}

/** `GET jobs/<id>`: the summary and the events so far. */
export interface IJobDetail extends IJobSummary {
  log: IProgressEvent[];
}

/** One event of a job's stream: a step begins, a log line, or the end. */
export interface IProgressEvent {
  seq: number;
  kind: 'step' | 'log' | 'end';
  step?: string | null;
  message?: string | null;
  fraction?: number | null;
  progress?: number | null;
  state?: JobState;
  error?: string | null;
  deployment?: IDeploymentInfo | null;
}

/** A job as the panel shows it. */
export interface IJobView {
  id: string;
  name: string;
  target: Target;
  origin: string;
  state: JobState;
  steps: string[];
  step: string | null;
  progress: number | null;
  lines: string[];
  error: string | null;
  deployment: IDeploymentInfo | null;
  seq: number;
}

export interface IGateway {
  running: boolean;
  url: string | null;
  error: string | null;
}

/** What the server pushes on `GET events` (and answers on `GET status`). */
export interface ISnapshot {
  apps: IAppRow[];
  gateway: IGateway;
  jobs: IJobSummary[];
  /** Where local runners run unless a deploy says (FAL_NOTEBOOK_LOCAL_ENV, else isolated). */
  local_env?: string;
  error?: string;
}

/** How many log lines of a job the panel keeps. */
export const JOB_LINES_KEPT = 200;

export function jobFromSummary(summary: IJobSummary): IJobView {
  return {
    id: summary.id,
    name: summary.name,
    target: summary.target,
    origin: summary.origin ?? 'panel',
    state: summary.state,
    steps: summary.steps,
    step: summary.step,
    progress: summary.progress,
    lines: [], // filled by the job's events, replayed from the first
    error: summary.error,
    deployment: summary.deployment,
    seq: 0
  };
}

/** The job after `event` (events already seen are ignored, so a resumed stream is harmless). */
export function applyEvent(job: IJobView, event: IProgressEvent): IJobView {
  if (event.seq <= job.seq) {
    return job;
  }
  const next: IJobView = { ...job, seq: event.seq };
  if (event.progress !== null && event.progress !== undefined) {
    next.progress = event.progress;
  }
  if (event.kind === 'end') {
    next.state = event.state ?? 'failed';
    next.error = event.error ?? null;
    next.deployment = event.deployment ?? null;
    if (next.state === 'ready') {
      next.step = 'ready';
    }
    return next;
  }
  if (event.step && job.steps.includes(event.step)) {
    next.step = event.step;
  }
  if (event.message) {
    next.lines = [...job.lines, event.message].slice(-JOB_LINES_KEPT);
  }
  return next;
}

export type StepState = 'done' | 'current' | 'todo' | 'failed';

/** Each step of the job with where the job is. */
export function stepStates(
  job: IJobView
): { step: string; title: string; state: StepState }[] {
  const current = job.step ? job.steps.indexOf(job.step) : 0;
  return job.steps.map((step, index) => {
    let state: StepState = 'todo';
    if (job.state === 'ready' || index < current) {
      state = 'done';
    } else if (index === current) {
      state =
        job.state === 'running'
          ? 'current'
          : job.state === 'failed'
            ? 'failed'
            : 'todo';
    }
    const titles: Record<string, string> = STEP_TITLES;
    return { step, title: titles[step] ?? step, state };
  });
}

/** A row of the panel. */
export interface IRowView {
  key: string;
  section: Section;
  name: string;
  status: Status;
  mode: string | null;
  target: Target | null;
  endpointId: string | null;
  url: string | null;
  queueUrl: string | null;
  runners: number | null;
  queued: number | null;
  gpus: IRunnerGpu[];
  waiting: string | null;
  relpath: string | null;
  path: string | null;
  cellId: string | null;
  /** The configuration that will deploy (the cell's keys and those changed in its file). */
  settings: Record<string, unknown>;
  /** Keys of `settings` that come from pyproject.toml. */
  fromFile: string[];
  /** Keys changed both in the cell and the file: the deploy asks which (the message says how). */
  conflict: string | null;
  error: string | null;
  /** Why the Playground cannot work for it (null: it can). */
  noPlayground: string | null;
  /** What its Playground is when it has no typed forms (null: it has). */
  playgroundNote: string | null;
  job: IJobView | null;
}

export interface ISections {
  notebook: IRowView[];
  /** `%%fal_app` cells that cannot become an app as they are (the message says why). */
  broken: ICellApp[];
  deployed: IRowView[];
  folders: IRowView[];
}

/**
 * The row's status: `deploying` while a job runs; a job that ended failed on an app that never
 * served is `failed` at once (not `captured` until the next snapshot); else the app's own.
 */
export function rowStatus(
  app: IAppRow | undefined,
  job: IJobView | undefined
): Status {
  const status = app?.status ?? 'captured';
  if (job?.state === 'running') {
    return 'deploying';
  }
  if (
    (job?.state === 'failed' || job?.state === 'interrupted') &&
    (status === 'captured' || status === 'deploying')
  ) {
    return 'failed';
  }
  return status;
}

/** Why the Playground of an app cannot work now, or null when it can. */
export function playgroundProblem(status: Status): string | null {
  return status === 'ready'
    ? null
    : 'The Playground opens once the app is ready.';
}

/** What the Playground of an app without an OpenAPI schema is (null: it has typed forms). */
export function playgroundNote(app: IAppRow | undefined): string | null {
  if (app?.openapi !== false) {
    return null;
  }
  return `${app.name} serves no OpenAPI schema (GET /openapi.json), so its Playground is a form for any HTTP request (method, path, query, body, files). Serve a schema (FastAPI does) for typed forms.`;
}

function row(
  section: Section,
  name: string,
  app: IAppRow | undefined,
  job: IJobView | undefined
): IRowView {
  const status = rowStatus(app, job);
  return {
    key: `${section}:${name}`,
    section,
    name,
    status,
    mode: app?.mode ?? null,
    target: app?.target ?? null,
    endpointId: app?.endpoint_id ?? null,
    url: app?.url ?? null,
    queueUrl: app?.queue_url ?? null,
    runners: app?.runners ?? null,
    queued: app?.queued ?? null,
    gpus: app?.gpus ?? [],
    waiting: app?.waiting ?? null,
    relpath: app?.relpath ?? null,
    path: app?.path ?? null,
    cellId: null,
    settings: {},
    fromFile: [],
    conflict: null,
    error: app?.error ?? null,
    noPlayground: playgroundProblem(status),
    playgroundNote: playgroundNote(app),
    job: job ?? null
  };
}

/**
 * The three sections: the open notebook's app cells (with their deployment's state, if any),
 * the other deployed apps, and the other captured projects. An app shows in one section only.
 */
export function buildSections(
  cellApps: ICellApp[],
  apps: IAppRow[],
  jobs: ReadonlyMap<string, IJobView>
): ISections {
  const byName = new Map(apps.map(app => [app.name, app]));
  const notebook: IRowView[] = [];
  const broken: ICellApp[] = [];
  const inNotebook = new Set<string>();
  for (const cell of cellApps) {
    if (!cell.name || cell.error || inNotebook.has(cell.name)) {
      broken.push(
        cell.name && !cell.error
          ? {
              ...cell,
              error: `Another cell above also defines ${cell.name}: give this one another name.`
            }
          : cell
      );
      continue;
    }
    inNotebook.add(cell.name);
    const view = row(
      'notebook',
      cell.name,
      byName.get(cell.name),
      jobs.get(cell.name)
    );
    view.mode = cell.mode ?? view.mode;
    view.cellId = cell.cellId;
    view.settings = cell.settings ?? cell.options;
    view.fromFile = cell.from_file ?? [];
    view.conflict = cell.conflict ?? null;
    notebook.push(view);
  }
  const deployed: IRowView[] = [];
  const folders: IRowView[] = [];
  for (const app of apps) {
    if (inNotebook.has(app.name)) {
      continue;
    }
    const job = jobs.get(app.name);
    if (app.target !== null || job?.state === 'running') {
      deployed.push(row('deployed', app.name, app, job));
    } else {
      folders.push(row('folders', app.name, app, job));
    }
  }
  return { notebook, broken, deployed, folders };
}

/** The status bar's and the panel header's word on the local gateway. */
export function statusText(snapshot: ISnapshot | null): string {
  if (!snapshot) {
    return 'fal';
  }
  const local = snapshot.apps.filter(
    app => app.target === 'local' || app.target === 'docker'
  );
  const starting = snapshot.jobs.filter(
    job =>
      job.state === 'running' &&
      (job.target === 'local' || job.target === 'docker')
  ).length;
  if (!snapshot.gateway.running) {
    return starting
      ? `fal: starting the gateway for ${starting} deploy${starting > 1 ? 's' : ''}`
      : 'fal: gateway stopped';
  }
  const ready = local.filter(app => app.status === 'ready').length;
  const more = starting ? `, ${starting} deploying` : '';
  return `fal: gateway running, ${ready}/${local.length} ready${more}`;
}

/** Configuration values as short labels (`keep_alive 30`, `machine_type GPU-H100`). */
export function optionLabels(options: Record<string, unknown>): string[] {
  return Object.entries(options).map(([key, value]) =>
    Array.isArray(value) ? `${key} ${value.join(', ')}` : `${key} ${value}`
  );
}

/** The line of an error that says what went wrong (a traceback's last `...Error: ...` line). */
export function keyLine(error: string): string {
  const lines = error
    .split('\n')
    .map(line => line.trim())
    .filter(Boolean);
  const raised = [...lines]
    .reverse()
    .find(line =>
      /^([\w.]+(Error|Exception|Exit|Interrupt)|[\w.]*Error)\b:?/.test(line)
    );
  return raised ?? lines[0] ?? error;
}

/**
 * An error as the panel shows it: its key line first, the rest after; paths into the gateway's
 * copy of a revision (`.../gateway/apps/<name>/rev-3/server.py`) named as the project's files.
 */
export function readableError(
  error: string,
  relpath: string | null
): { key: string; text: string } {
  const text = error.replace(
    /[^\s"']*\/gateway\/apps\/[^/\s]+\/rev-\d+\//g,
    relpath ? `${relpath}/` : ''
  );
  return { key: keyLine(text), text };
}

/** True when the cell's source is a `%%fal_app` cell. */
export function isAppCell(source: string): boolean {
  return /^\s*%%fal_app(\s|$)/.test(source);
}
