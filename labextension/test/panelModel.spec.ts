/**
 * @jest-environment jsdom
 */
/** PanelModel with its API client mocked (the pattern of jupyterlab-git's model.spec.tsx). */
import { ApiError } from '../src/api';
import { PanelModel } from '../src/panelModel';
import { app, fakeClient, fakeNotifier, snapshot, summary } from './fakes';

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

describe('PanelModel', () => {
  it('shows the server’s state after a refresh', async () => {
    const client = fakeClient();
    (client.status as jest.Mock).mockResolvedValue(
      snapshot({ apps: [app('web', { target: 'local', status: 'ready' })] })
    );
    const model = new PanelModel(client, fakeNotifier());
    await model.refresh();
    expect(model.sections.deployed.map(row => [row.name, row.status])).toEqual([
      ['web', 'ready']
    ]);
  });

  it('deploys a row and follows its job to ready, then says so', async () => {
    const client = fakeClient();
    const notify = fakeNotifier();
    const model = new PanelModel(client, notify);
    await model.refresh();
    const row = model.sections.folders[0] ?? {
      name: 'web',
      section: 'folders'
    };
    await model.deploy(row as any, 'docker');
    expect(client.deploy).toHaveBeenCalledWith('web', { target: 'docker' });
    const id = summary().id;
    expect(client.followJob).toHaveBeenCalledWith(
      id,
      0,
      expect.any(Function),
      expect.anything()
    );
    expect(model.jobs.get('web')?.state).toBe('running');
    client.emit(id, {
      seq: 1,
      kind: 'step',
      step: 'runners',
      message: 'Starting runner r1-1',
      progress: 0.5
    });
    expect(model.jobs.get('web')).toMatchObject({
      step: 'runners',
      progress: 0.5,
      lines: ['Starting runner r1-1']
    });
    client.emit(id, {
      seq: 2,
      kind: 'end',
      state: 'ready',
      deployment: {
        name: 'web',
        target: 'docker',
        endpoint_id: 'local/web',
        url: 'u',
        queue_url: 'q',
        status: 'ready'
      }
    });
    expect(model.jobs.get('web')?.state).toBe('ready');
    expect(notify.success).toHaveBeenCalledWith(
      expect.stringContaining('web is ready on local')
    );
    expect(client.status).toHaveBeenCalledTimes(2); // the state again after the end
  });

  it('follows a deploy a kernel started, and cancels it by its job', async () => {
    const client = fakeClient();
    const model = new PanelModel(client, fakeNotifier());
    const running = summary({ id: '00000000000000aa', origin: 'magic' });
    (client.status as jest.Mock).mockResolvedValue(
      snapshot({ apps: [app('web')], jobs: [running] })
    );
    await model.refresh();
    expect(client.followJob).toHaveBeenCalledWith(
      running.id,
      0,
      expect.any(Function),
      expect.anything()
    );
    const [row] = model.sections.deployed; // deploying: not in Folders
    expect([row.status, row.job?.origin]).toEqual(['deploying', 'magic']);
    await model.cancel('web');
    expect(client.cancelJob).toHaveBeenCalledWith(running.id);
  });

  it('restores the log of a job that ended before the page loaded', async () => {
    const client = fakeClient();
    const ended = summary({ state: 'failed', error: 'boom' });
    (client.status as jest.Mock).mockResolvedValue(
      snapshot({ apps: [app('web')], jobs: [ended] })
    );
    (client.job as jest.Mock).mockResolvedValue({
      ...ended,
      log: [
        { seq: 1, kind: 'step', step: 'capture', message: 'Capturing web' },
        { seq: 2, kind: 'end', state: 'failed', error: 'boom' }
      ]
    });
    const model = new PanelModel(client, fakeNotifier());
    await model.refresh();
    await flush();
    expect(client.followJob).not.toHaveBeenCalled();
    expect(model.jobs.get('web')).toMatchObject({
      state: 'failed',
      lines: ['Capturing web']
    });
    expect(model.sections.folders[0].status).toBe('failed'); // not "captured" in between
  });

  it('shows a failed action in its row and as a toast that closes', async () => {
    const client = fakeClient();
    const notify = fakeNotifier();
    (client.stop as jest.Mock).mockRejectedValue(
      new ApiError('No app named web', 404)
    );
    const model = new PanelModel(client, notify);
    await model.stop('web');
    expect(model.actionErrors.get('web')).toBe(
      'Stopping web failed: No app named web'
    );
    expect(notify.error).toHaveBeenCalledWith(
      'Stopping web failed: No app named web'
    );
  });

  it('puts a crash’s key line first in the toast, the whole text behind it', async () => {
    const client = fakeClient();
    const notify = fakeNotifier();
    const model = new PanelModel(client, notify);
    await model.startJob('web', 'local');
    const traceback =
      'Deploying web failed: runner r1-1 exited with code 1 before serving:\n' +
      'Traceback (most recent call last):\n' +
      '  File "/home/u/.local/share/fal-notebook/gateway/apps/web/rev-1/server.py", line 3\n' +
      'ModuleNotFoundError: No module named "nope"';
    client.emit(summary().id, {
      seq: 1,
      kind: 'end',
      state: 'failed',
      error: traceback
    });
    const [message, details] = notify.error.mock.calls[0];
    expect(message).toBe(
      'Deploying web failed: ModuleNotFoundError: No module named "nope"'
    );
    expect(details).toContain('File "server.py", line 3'); // no path into the gateway's copy
  });

  it('collapses and expands sections', () => {
    const model = new PanelModel(fakeClient(), fakeNotifier());
    model.toggleSection('folders');
    expect(model.collapsed.has('folders')).toBe(true);
    model.toggleSection('folders');
    expect(model.collapsed.has('folders')).toBe(false);
  });
});
