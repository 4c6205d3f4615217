import {
  applyEvent,
  buildSections,
  envLabel,
  ICellApp,
  IJobView,
  isAppCell,
  jobFromSummary,
  JOB_LINES_KEPT,
  optionLabels,
  statusText,
  stepStates
} from '../src/model';
import { app, summary } from './fakes';

function cell(
  cellId: string,
  name: string | null,
  extra: Partial<ICellApp> = {}
): ICellApp {
  return { cellId, name, mode: 'server', options: {}, error: null, ...extra };
}

describe('buildSections', () => {
  it('puts the notebook’s apps first, with their deployment’s state, and each app in one section', () => {
    const apps = [
      app('web', {
        target: 'local',
        status: 'ready',
        endpoint_id: 'local/web',
        runners: 1,
        queued: 0
      }),
      app('other', { target: 'docker', status: 'stopped' }),
      app('old')
    ];
    const sections = buildSections(
      [cell('c1', 'web'), cell('c2', 'text-stats', { mode: 'app' })],
      apps,
      new Map()
    );
    expect(sections.notebook.map(r => [r.name, r.status, r.cellId])).toEqual([
      ['web', 'ready', 'c1'],
      ['text-stats', 'captured', 'c2']
    ]);
    expect(sections.notebook[0].endpointId).toBe('local/web');
    expect(sections.notebook[1].relpath).toBeNull(); // not captured yet
    expect(sections.deployed.map(r => r.name)).toEqual(['other']);
    expect(sections.folders.map(r => r.name)).toEqual(['old']);
  });

  it('shows a running job as deploying, even for an app the server does not list yet', () => {
    const job = jobFromSummary(summary({ name: 'fresh' }));
    const sections = buildSections(
      [cell('c1', 'fresh')],
      [],
      new Map([['fresh', job]])
    );
    expect(sections.notebook[0].status).toBe('deploying');
    expect(sections.notebook[0].job).toBe(job);
    const elsewhere = buildSections(
      [],
      [app('fresh')],
      new Map([['fresh', job]])
    );
    expect(elsewhere.deployed.map(r => [r.name, r.status])).toEqual([
      ['fresh', 'deploying']
    ]);
  });

  it('lists cells that cannot be apps, and a second cell with the same name, apart', () => {
    const sections = buildSections(
      [
        cell('c1', 'web'),
        cell('c2', null, { error: 'defines no fal.App subclass' }),
        cell('c3', 'web')
      ],
      [],
      new Map()
    );
    expect(sections.notebook.map(r => r.cellId)).toEqual(['c1']);
    expect(sections.broken.map(c => c.cellId)).toEqual(['c2', 'c3']);
    expect(sections.broken[1].error).toContain(
      'Another cell above also defines web'
    );
  });
});

describe('jobs', () => {
  const events = [
    {
      seq: 1,
      kind: 'step',
      step: 'capture',
      message: 'Capturing web',
      progress: 0
    },
    {
      seq: 2,
      kind: 'step',
      step: 'environment',
      message: 'Building environment',
      progress: 0.25
    },
    {
      seq: 3,
      kind: 'log',
      step: 'environment',
      message: '  Step 2/4 : RUN pip',
      fraction: 0.25,
      progress: 0.3125
    },
    {
      seq: 4,
      kind: 'step',
      step: 'runners',
      message: 'Starting runner web-r1',
      progress: 0.5
    }
  ] as const;

  function play(): IJobView {
    return events.reduce(
      (job, event) => applyEvent(job, { ...event }),
      jobFromSummary(summary())
    );
  }

  it('follows the steps, the progress the server computed, and the log lines', () => {
    let job = jobFromSummary(summary());
    job = applyEvent(job, { ...events[0] });
    job = applyEvent(job, { ...events[1] });
    job = applyEvent(job, { ...events[2] });
    expect([job.step, job.progress]).toEqual(['environment', 0.3125]);
    job = applyEvent(job, { ...events[3] });
    expect([job.step, job.progress]).toEqual(['runners', 0.5]);
    expect(job.lines).toEqual(events.map(e => e.message));
    expect(stepStates(job).map(s => s.state)).toEqual([
      'done',
      'done',
      'current',
      'todo'
    ]);
  });

  it('ignores events it has already seen (a resumed stream), and steps it does not know', () => {
    const job = play();
    expect(applyEvent(job, { ...events[2] })).toBe(job);
    expect(
      applyEvent(job, { seq: 5, kind: 'log', step: 'elsewhere', message: 'x' })
        .step
    ).toBe('runners');
  });

  it('ends ready with every step done, or failed on its step with the error', () => {
    const job = play();
    const ready = applyEvent(job, {
      seq: 5,
      kind: 'end',
      state: 'ready',
      error: null,
      progress: 1
    });
    expect([ready.state, ready.progress]).toEqual(['ready', 1]);
    expect(stepStates(ready).every(s => s.state === 'done')).toBe(true);
    const failed = applyEvent(job, {
      seq: 5,
      kind: 'end',
      state: 'failed',
      error: 'Runner web-r1 exited'
    });
    expect([failed.state, failed.error, failed.progress]).toEqual([
      'failed',
      'Runner web-r1 exited',
      0.5
    ]);
    expect(stepStates(failed).map(s => s.state)).toEqual([
      'done',
      'done',
      'failed',
      'todo'
    ]);
  });

  it('keeps the last lines only', () => {
    let job = jobFromSummary(summary());
    for (let seq = 1; seq <= JOB_LINES_KEPT + 10; seq++) {
      job = applyEvent(job, {
        seq,
        kind: 'log',
        step: 'environment',
        message: `line ${seq}`
      });
    }
    expect(job.lines.length).toBe(JOB_LINES_KEPT);
    expect(job.lines[JOB_LINES_KEPT - 1]).toBe(`line ${JOB_LINES_KEPT + 10}`);
  });
});

describe('small views', () => {
  it('says how the gateway is doing in the status bar', () => {
    expect(statusText(null)).toBe('fal');
    const gateway = {
      running: true,
      url: 'http://127.0.0.1:8765',
      error: null
    };
    const apps = [
      app('a', { target: 'local', status: 'ready' }),
      app('b', { target: 'docker', status: 'failed' }),
      app('c', { target: 'fal', status: 'ready' })
    ];
    expect(statusText({ apps, gateway, jobs: [] })).toBe(
      'fal: gateway running, 1/2 ready'
    );
    expect(
      statusText({ apps, gateway: { ...gateway, running: false }, jobs: [] })
    ).toBe('fal: gateway stopped');
  });

  it('labels a cell’s options and recognises app cells', () => {
    expect(
      optionLabels({ keep_alive: 30, machine_type: ['GPU-H100', 'GPU-A100'] })
    ).toEqual(['keep_alive 30', 'machine_type GPU-H100, GPU-A100']);
    expect(isAppCell('%%fal_app web\nx')).toBe(true);
    expect(isAppCell('  %%fal_app')).toBe(true);
    expect(isAppCell('%%fal_apps\nx')).toBe(false);
    expect(isAppCell('x = 1\n%%fal_app')).toBe(false);
  });
});

describe('GPUs and the runners environment', () => {
  it('carries the GPUs and the reason to wait into the rows', () => {
    const gpus = [
      {
        runner: 'web-r1-1',
        index: 1,
        uuid: '1',
        name: null,
        memory_mib: null,
        memory_used_mib: null,
        line: 'web-r1-1: GPU 1'
      }
    ];
    const deployed = app('web', {
      target: 'local',
      status: 'ready',
      gpus,
      waiting: 'it needs 1 GPU, 0 free'
    });
    const [row] = buildSections([], [deployed], new Map()).deployed;
    expect(row.gpus).toEqual(gpus);
    expect(row.waiting).toBe('it needs 1 GPU, 0 free');
    const [captured] = buildSections([], [app('other')], new Map()).folders;
    expect(captured.gpus).toEqual([]);
    expect(captured.waiting).toBeNull();
  });

  it('names the server default in the environment picker', () => {
    expect(envLabel('', 'kernel')).toBe('default (kernel)');
    expect(envLabel('', undefined)).toBe('default (isolated)');
    expect(envLabel('isolated', 'kernel')).toBe('isolated');
  });
});
