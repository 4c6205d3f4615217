/**
 * The one client of the server extension (`<base_url>/fal-notebook/...`): a typed method per
 * route, through Jupyter's own connection settings (authentication and the XSRF token go along);
 * event streams are read with `fetch`. Components and the model never fetch by themselves: they
 * are given an `IFalClient` (tests give them a mock).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type {
  IAppDetail,
  IAppRow,
  ICellDescription,
  IConfigSaved,
  IJobDetail,
  IJobSummary,
  IProgressEvent,
  ISnapshot
} from './model';
import type { IConfigSchema } from './schemaForm';
import { SSEParser } from './sse';
import type { Target } from './vocabulary';

/** An error answer of the server: its message, and the fields (config keys) it is about. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly fields: string[] = []
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A notebook's cells as the server's capture reads them. */
export interface ICellSource {
  cell_type: string;
  source: string;
}

/** What a panel Deploy sends: the target and, for a row of the open notebook, its current cells. */
export interface IDeployRequest {
  target: Target;
  /** Where local runners run (`kernel`, `isolated`); absent: the server's default. */
  env?: 'kernel' | 'isolated';
  notebook?: { path: string; cells: ICellSource[] };
}

/** Every route of the server extension. */
export interface IFalClient {
  apps(): Promise<IAppRow[]>;
  app(name: string): Promise<IAppDetail>;
  status(): Promise<ISnapshot>;
  deploy(name: string, request: IDeployRequest): Promise<IJobSummary>;
  stop(name: string): Promise<unknown>;
  configure(
    name: string,
    changes: Record<string, unknown>
  ): Promise<IConfigSaved>;
  configSchema(): Promise<IConfigSchema>;
  capture(path: string): Promise<unknown>;
  describeCells(
    cells: string[],
    path?: string
  ): Promise<(ICellDescription | null)[]>;
  job(id: string): Promise<IJobDetail>;
  cancelJob(id: string): Promise<unknown>;
  /** The live snapshots, until `signal` aborts or the stream ends. */
  followSnapshots(
    onSnapshot: (snapshot: ISnapshot) => void,
    signal: AbortSignal
  ): Promise<void>;
  /** A job's events after `since`, until its end event or `signal` aborts. */
  followJob(
    id: string,
    since: number,
    onEvent: (event: IProgressEvent) => void,
    signal: AbortSignal
  ): Promise<void>;
  /** An app's log lines as they come (`onError` for the server's word on why they stop). */
  followLogs(
    name: string,
    onLine: (line: string) => void,
    onError: (message: string) => void,
    signal: AbortSignal
  ): Promise<void>;
}

function url(endPoint: string): string {
  const settings = ServerConnection.makeSettings();
  return URLExt.join(settings.baseUrl, 'fal-notebook', endPoint);
}

async function send(endPoint: string, init: RequestInit): Promise<Response> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url(endPoint),
      init,
      settings
    );
  } catch (error) {
    if ((error as Error).name === 'AbortError') {
      throw error;
    }
    throw new ApiError(
      `The Jupyter server did not answer (${(error as Error).message}).`,
      0
    );
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let fields: string[] = [];
    try {
      const data = await response.json();
      message = data.message || message;
      fields = data.fields ?? [];
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(message, response.status, fields);
  }
  return response;
}

async function request<T>(
  endPoint: string,
  method = 'GET',
  body?: unknown
): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  const response = await send(endPoint, init);
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** Read a Server-Sent Events route until it ends or `signal` aborts. */
async function stream(
  endPoint: string,
  onEvent: (name: string, data: any) => void,
  signal: AbortSignal
): Promise<void> {
  const response = await send(endPoint, {
    method: 'GET',
    signal,
    headers: { Accept: 'text/event-stream' }
  });
  if (!response.body) {
    throw new ApiError('The server sent no event stream.', response.status);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        return;
      }
      for (const event of parser.push(
        decoder.decode(value, { stream: true })
      )) {
        onEvent(event.event, JSON.parse(event.data));
      }
    }
  } finally {
    reader.releaseLock();
  }
}

const app = (name: string, ...rest: string[]) =>
  ['apps', encodeURIComponent(name), ...rest].join('/');

/** The client of a running Jupyter server. */
export class FalClient implements IFalClient {
  apps = () => request<IAppRow[]>('apps');
  app = (name: string) => request<IAppDetail>(app(name));
  status = () => request<ISnapshot>('status');
  deploy = (name: string, body: IDeployRequest) =>
    request<IJobSummary>(app(name, 'deploy'), 'POST', body);
  stop = (name: string) => request(app(name, 'stop'), 'POST', {});
  configure = (name: string, changes: Record<string, unknown>) =>
    request<IConfigSaved>(app(name, 'config'), 'PUT', changes);
  configSchema = () => request<IConfigSchema>('config/schema');
  capture = (path: string) => request('capture', 'POST', { path });
  describeCells = (cells: string[], path?: string) =>
    request<(ICellDescription | null)[]>('notebook/apps', 'POST', {
      cells,
      ...(path ? { path } : {})
    });
  job = (id: string) => request<IJobDetail>(`jobs/${id}`);
  cancelJob = (id: string) => request(`jobs/${id}/cancel`, 'POST', {});

  followSnapshots(
    onSnapshot: (snapshot: ISnapshot) => void,
    signal: AbortSignal
  ): Promise<void> {
    return stream(
      'events',
      (name, data) => name === 'snapshot' && onSnapshot(data as ISnapshot),
      signal
    );
  }

  followJob(
    id: string,
    since: number,
    onEvent: (event: IProgressEvent) => void,
    signal: AbortSignal
  ): Promise<void> {
    return stream(
      `jobs/${id}/events?since=${since}`,
      (name, data) => name === 'progress' && onEvent(data as IProgressEvent),
      signal
    );
  }

  followLogs(
    name: string,
    onLine: (line: string) => void,
    onError: (message: string) => void,
    signal: AbortSignal
  ): Promise<void> {
    return stream(
      `${app(name, 'logs')}?follow=1`,
      (event, data) => {
        if (event === 'line') {
          onLine(String(data));
        } else if (event === 'error') {
          onError(String(data.message));
        }
      },
      signal
    );
  }
}
