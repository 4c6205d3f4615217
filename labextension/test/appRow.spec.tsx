/**
 * @jest-environment jsdom
 */
/** An app's row as a person reads and uses it (testing-library, as jupyterlab-git's GitPanel.spec.tsx). */
import { fireEvent, render, screen } from '@testing-library/react';
import React from 'react';

import { buildSections, IJobView } from '../src/model';
import { AppRow, IPanelActions } from '../src/panel';
import { PanelModel } from '../src/panelModel';
import { app, fakeClient, fakeNotifier } from './fakes';

type MockActions = { [K in keyof IPanelActions]: jest.Mock };

function actions(): MockActions {
  return {
    goToCell: jest.fn(),
    openLogs: jest.fn(),
    openPlayground: jest.fn(),
    openPath: jest.fn(),
    showText: jest.fn(),
    copy: jest.fn()
  };
}

function rowOf(extra = {}, cell = {}, job?: IJobView) {
  const jobs = new Map(job ? [['web', job]] : []);
  const sections = buildSections(
    [
      {
        cellId: 'c1',
        name: 'web',
        mode: 'server',
        options: { keep_alive: 120 },
        error: null,
        ...cell
      }
    ],
    [app('web', extra)],
    jobs
  );
  return sections.notebook[0];
}

const ready = {
  target: 'local' as const,
  status: 'ready' as const,
  endpoint_id: 'local/web',
  url: 'http://127.0.0.1:8765/local/web',
  queue_url: 'http://127.0.0.1:8765/queue/local/web',
  runners: 1,
  queued: 0
};

describe('AppRow', () => {
  it('shows the configuration that will deploy, the file’s keys marked', () => {
    const row = rowOf(
      {},
      {
        settings: { keep_alive: 300, max_concurrency: 2 },
        from_file: ['keep_alive', 'max_concurrency']
      }
    );
    const model = new PanelModel(fakeClient(), fakeNotifier());
    render(<AppRow row={row} model={model} actions={actions()} />);
    const chip = screen.getByText('keep_alive 300').closest('.fal-Chip')!;
    expect(chip.className).toContain('fal-Chip-file');
    expect(chip.getAttribute('title')).toContain('set in pyproject.toml');
    expect(screen.queryByText('keep_alive 120')).toBeNull();
  });

  it('warns of a conflict between the cell and the file before a deploy', () => {
    const row = rowOf(
      {},
      { conflict: 'web was changed both in the cell and in pyproject.toml' }
    );
    const model = new PanelModel(fakeClient(), fakeNotifier());
    render(<AppRow row={row} model={model} actions={actions()} />);
    expect(screen.getByRole('note').textContent).toContain('changed both');
  });

  it('offers the Playground once ready, a request form for a server without a schema', () => {
    const model = new PanelModel(fakeClient(), fakeNotifier());
    const { rerender } = render(
      <AppRow
        row={rowOf({ status: 'failed', target: 'local' })}
        model={model}
        actions={actions()}
      />
    );
    const button = () =>
      screen.getByRole('button', { name: 'Playground' }) as HTMLButtonElement;
    expect(button().disabled).toBe(true);
    expect(button().title).toContain('once the app is ready');
    rerender(<AppRow row={rowOf(ready)} model={model} actions={actions()} />);
    expect(button().disabled).toBe(false);
    expect(screen.queryByText(/serves no OpenAPI schema/)).toBeNull();
    rerender(
      <AppRow
        row={rowOf({ ...ready, openapi: false })}
        model={model}
        actions={actions()}
      />
    );
    expect(button().disabled).toBe(false);
    expect(screen.getByText(/serves no OpenAPI schema/).textContent).toContain(
      'a form for any HTTP request'
    );
  });

  it('names each copy button after its value and its app', () => {
    const act = actions();
    const model = new PanelModel(fakeClient(), fakeNotifier());
    render(<AppRow row={rowOf(ready)} model={model} actions={act} />);
    fireEvent.click(
      screen.getByRole('button', { name: 'Copy the queue url of web' })
    );
    expect(act.copy).toHaveBeenCalledWith('queue url', ready.queue_url);
    expect(
      screen.getByRole('button', { name: 'Copy the endpoint id of web' })
    ).toBeTruthy();
  });

  it('shows each GPU a runner holds as the server wrote it, its uuid on hover', () => {
    const line =
      'web-r1-1: GPU 0 NVIDIA H200 (GPU-5b1f0c2e), 3.1 of 140.4 GiB used';
    const gpu = {
      runner: 'web-r1-1',
      index: 0,
      uuid: 'GPU-5b1f0c2e-0d1e-4c6a-9f2b-7a8e3d4c5b6a',
      name: 'NVIDIA H200',
      memory_mib: 143771,
      memory_used_mib: 3174,
      line
    };
    const model = new PanelModel(fakeClient(), fakeNotifier());
    render(
      <AppRow
        row={rowOf({ ...ready, gpus: [gpu] })}
        model={model}
        actions={actions()}
      />
    );
    const shown = screen.getByText(line);
    expect(shown.getAttribute('title')).toBe(gpu.uuid);
    expect(shown.previousElementSibling?.textContent).toBe('GPU');
  });

  it('shows a crash’s key line first, and the whole text on Show', () => {
    const act = actions();
    const model = new PanelModel(fakeClient(), fakeNotifier());
    const error =
      'runner r1-1 exited with code 1 before serving:\nTraceback (most recent call last):\n' +
      '  File "/h/gateway/apps/web/rev-2/server.py", line 1\nRuntimeError: no GPU here';
    render(
      <AppRow
        row={rowOf({ target: 'local', status: 'failed', error })}
        model={model}
        actions={act}
      />
    );
    const key = document.querySelector('.fal-Error-key')!;
    expect(key.textContent).toBe('RuntimeError: no GPU here');
    expect(key.tagName).toBe('PRE');
    fireEvent.click(screen.getByRole('button', { name: /Show the full text/ }));
    expect(act.showText.mock.calls[0][1]).toContain(
      'File "fal_apps/web/server.py", line 1'
    );
  });

  it('cancels a running deploy, whoever started it', () => {
    const client = fakeClient();
    const model = new PanelModel(client, fakeNotifier());
    const job: IJobView = {
      id: '00000000000000aa',
      name: 'web',
      target: 'local',
      origin: 'magic',
      state: 'running',
      steps: ['environment', 'runners', 'ready'],
      step: 'runners',
      progress: 0.34,
      lines: ['Starting runner r1-1'],
      error: null,
      deployment: null,
      seq: 3
    };
    model.jobs.set('web', job);
    render(
      <AppRow row={rowOf({}, {}, job)} model={model} actions={actions()} />
    );
    expect(
      screen.getByText(/started by %fal_deploy in a notebook/)
    ).toBeTruthy();
    expect(screen.getByRole('progressbar').getAttribute('aria-valuenow')).toBe(
      '34'
    );
    expect(
      (screen.getByRole('button', { name: 'Deploy' }) as HTMLButtonElement)
        .disabled
    ).toBe(true);
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(client.cancelJob).toHaveBeenCalledWith(job.id);
  });
});
