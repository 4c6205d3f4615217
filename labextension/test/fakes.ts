/** A mocked IFalClient and notifier for the unit tests (every route a jest mock). */
import { IFalClient } from '../src/api';
import { IAppRow, IJobSummary, IProgressEvent, ISnapshot } from '../src/model';
import { INotifier } from '../src/panelModel';

export function app(name: string, extra: Partial<IAppRow> = {}): IAppRow {
  return {
    name,
    mode: 'server',
    path: `/root/fal_apps/${name}`,
    relpath: `fal_apps/${name}`,
    target: null,
    status: 'captured',
    endpoint_id: null,
    ...extra
  };
}

export function summary(extra: Partial<IJobSummary> = {}): IJobSummary {
  return {
    id: 'a1b2c3d4e5f60718',
    name: 'web',
    target: 'local',
    origin: 'panel',
    state: 'running',
    steps: ['capture', 'environment', 'runners', 'ready'],
    step: null,
    progress: null,
    message: null,
    events: 0,
    deployment: null,
    error: null,
    ...extra
  };
}

export function snapshot(extra: Partial<ISnapshot> = {}): ISnapshot {
  return {
    apps: [],
    gateway: { running: true, url: 'http://127.0.0.1:8765', error: null },
    jobs: [],
    ...extra
  };
}

/** A client whose job streams are driven by the test: `emit(jobId, event)`. */
export function fakeClient(): IFalClient & {
  emit: (id: string, event: IProgressEvent) => void;
} {
  const listeners = new Map<string, (event: IProgressEvent) => void>();
  const ends = new Map<string, () => void>();
  return {
    apps: jest.fn(async () => []),
    app: jest.fn(async () => ({ config: {} })),
    status: jest.fn(async () => snapshot()),
    deploy: jest.fn(async (name: string) => summary({ name })),
    stop: jest.fn(async () => ({})),
    configure: jest.fn(async (name: string) => ({
      name,
      config: {},
      changed: []
    })),
    configSchema: jest.fn(async () => ({
      schema: {},
      editable: [],
      flags: {}
    })),
    capture: jest.fn(async () => []),
    describeCells: jest.fn(async () => []),
    job: jest.fn(async (id: string) => ({ ...summary({ id }), log: [] })),
    cancelJob: jest.fn(async () => ({})),
    followSnapshots: jest.fn(() => new Promise<void>(() => undefined)),
    followJob: jest.fn(
      (id: string, _since: number, onEvent: (e: IProgressEvent) => void) =>
        new Promise<void>(resolve => {
          listeners.set(id, onEvent);
          ends.set(id, resolve);
        })
    ),
    followLogs: jest.fn(async () => undefined),
    emit(id: string, event: IProgressEvent) {
      listeners.get(id)?.(event);
      if (event.kind === 'end') {
        ends.get(id)?.();
      }
    }
  };
}

export function fakeNotifier(): INotifier & {
  success: jest.Mock;
  info: jest.Mock;
  error: jest.Mock;
} {
  return { success: jest.fn(), info: jest.fn(), error: jest.fn() };
}
