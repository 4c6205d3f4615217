/**
 * Calls to the server extension (`<base_url>/fal-notebook/...`) through Jupyter's own connection
 * settings, so authentication and the XSRF token go along; event streams are read with `fetch`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { SSEParser } from './sse';

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

/** A JSON request; an ApiError with the server's message when it fails. */
export async function requestAPI<T>(
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

/**
 * Read a Server-Sent Events route until it ends or `signal` aborts; each event goes to
 * `onEvent` with its JSON data.
 */
export async function streamAPI(
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
