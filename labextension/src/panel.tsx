/**
 * The fal sidebar: this notebook's apps, what is deployed, the other captured projects; per app a
 * target picker, Deploy, Stop, Logs, Playground, the project's files and its config editor; live
 * deploy progress with Cancel.
 */
import { Notification } from '@jupyterlab/apputils';
import {
  Button,
  copyIcon,
  editIcon,
  fileIcon,
  folderIcon,
  HTMLSelect,
  LabIcon,
  ReactWidget
} from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import React, { useEffect, useRef, useState } from 'react';

import { ConfigForm } from './configForm';
import { falIcon } from './icons';
import {
  Env,
  ENVS,
  envLabel,
  gpuLine,
  IJobView,
  IRowView,
  optionLabels,
  stepStates,
  Target,
  TARGETS
} from './model';
import { PanelModel } from './panelModel';

/** What the panel's buttons do outside the panel (commands, the notebook, the main area). */
export interface IPanelActions {
  goToCell(cellId: string): void;
  openLogs(name: string): void;
  openPlayground(row: IRowView): void;
  openPath(relpath: string, isFolder: boolean): void;
}

export class FalPanel extends ReactWidget {
  constructor(
    readonly model: PanelModel,
    private readonly _actions: IPanelActions
  ) {
    super();
    this.id = 'fal-notebook-panel';
    this.title.icon = falIcon;
    this.title.caption = 'fal: deploy and call this notebook’s apps';
    this.addClass('fal-Panel');
    model.changed.connect(() => this.update(), this);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.model.setVisible(this.isVisible && !document.hidden);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setVisible(!document.hidden);
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.setVisible(false);
    super.onBeforeDetach(msg);
  }

  protected onAfterHide(msg: Message): void {
    this.model.setVisible(false);
    super.onAfterHide(msg);
  }

  render(): JSX.Element {
    return <PanelView model={this.model} actions={this._actions} />;
  }
}

function PanelView(props: {
  model: PanelModel;
  actions: IPanelActions;
}): JSX.Element {
  const { model, actions } = props;
  const sections = model.sections;
  const gateway = model.snapshot?.gateway;
  const notebookName = model.notebook?.title.label;
  return (
    <div className="fal-Panel-body" aria-busy={!model.live}>
      <header className="fal-Panel-header">
        <h2 className="fal-Panel-title">
          <falIcon.react tag="span" className="fal-Panel-logo" />
          fal apps
        </h2>
        <div className="fal-Gateway" role="status">
          {gateway === undefined
            ? 'Connecting...'
            : gateway.running
              ? `Local gateway: running at ${gateway.url}`
              : `Local gateway: stopped${gateway.error ? ` (${gateway.error})` : ' (a local deploy starts it)'}`}
        </div>
        {model.error && (
          <div className="fal-Error" role="alert">
            {model.error}
          </div>
        )}
      </header>
      <SectionView
        title={
          notebookName ? `This notebook: ${notebookName}` : 'This notebook'
        }
        id="notebook"
        rows={sections.notebook}
        model={model}
        actions={actions}
        empty={
          model.notebook ? (
            <>
              Add <code>%%fal_app NAME</code> to a cell, or use{' '}
              <em>Deploy this cell with fal</em> on a code cell.
            </>
          ) : (
            <>Open a notebook to see its apps.</>
          )
        }
      >
        {sections.broken.map(cell => (
          <li key={cell.cellId} className="fal-BrokenCell">
            <button
              className="fal-LinkButton"
              onClick={() => actions.goToCell(cell.cellId)}
            >
              {cell.name ?? '%%fal_app cell'}
            </button>
            <div className="fal-Error">{cell.error}</div>
          </li>
        ))}
      </SectionView>
      <SectionView
        title="Deployed"
        id="deployed"
        rows={sections.deployed}
        model={model}
        actions={actions}
        empty={<>Nothing else is deployed. Deploy an app above.</>}
      />
      <SectionView
        title="Folders"
        id="folders"
        rows={sections.folders}
        model={model}
        actions={actions}
        empty={
          <>
            No other captured project (in <code>fal_apps/</code> or captured
            elsewhere).
          </>
        }
      />
    </div>
  );
}

function SectionView(props: {
  title: string;
  id: string;
  rows: IRowView[];
  model: PanelModel;
  actions: IPanelActions;
  empty: React.ReactNode;
  children?: React.ReactNode;
}): JSX.Element {
  const headingId = `fal-section-${props.id}`;
  const hasChildren = React.Children.count(props.children) > 0;
  return (
    <section
      className="fal-Section"
      aria-labelledby={headingId}
      data-fal-section={props.id}
    >
      <h3 id={headingId} className="fal-Section-title">
        {props.title}
        <span className="fal-Section-count">{props.rows.length}</span>
      </h3>
      {props.rows.length === 0 && !hasChildren ? (
        <p className="fal-Empty">{props.empty}</p>
      ) : (
        <ul className="fal-Rows">
          {props.rows.map(row => (
            <AppRow
              key={row.key}
              row={row}
              model={props.model}
              actions={props.actions}
            />
          ))}
          {props.children}
        </ul>
      )}
    </section>
  );
}

function AppRow(props: {
  row: IRowView;
  model: PanelModel;
  actions: IPanelActions;
}): JSX.Element {
  const { row, model, actions } = props;
  const [target, setTarget] = useState<Target>(
    row.target ?? model.defaultTarget
  );
  const [env, setEnv] = useState<Env>('');
  const [configOpen, setConfigOpen] = useState(false);
  const deploying = row.status === 'deploying';
  const deployed = row.target !== null;
  const actionError = model.actionErrors.get(row.name);
  const local = row.target === 'local' || row.target === 'docker';
  return (
    <li
      className="fal-Row"
      data-fal-app={row.name}
      data-fal-status={row.status}
      aria-label={`${row.name}: ${row.status}`}
    >
      <div className="fal-Row-head">
        {row.cellId ? (
          <button
            className="fal-LinkButton fal-Row-name"
            title={`Go to the cell of ${row.name}`}
            onClick={() => actions.goToCell(row.cellId!)}
          >
            {row.name}
          </button>
        ) : (
          <span className="fal-Row-name">{row.name}</span>
        )}
        <span className={`fal-Status fal-Status-${row.status}`}>
          {row.status}
        </span>
      </div>
      <div className="fal-Row-meta">
        {row.mode && (
          <span className="fal-Chip">
            {row.mode === 'app' ? 'fal.App' : row.mode}
          </span>
        )}
        {deployed && <span className="fal-Chip">on {row.target}</span>}
        {optionLabels(row.options).map(label => (
          <span key={label} className="fal-Chip fal-Chip-option">
            {label}
          </span>
        ))}
      </div>
      {deployed && row.endpointId && (
        <dl className="fal-Row-urls">
          <CopyValue label="endpoint id" value={row.endpointId} />
          {row.url && <CopyValue label="url" value={row.url} />}
          {row.queueUrl && <CopyValue label="queue url" value={row.queueUrl} />}
          {local && row.runners !== null && (
            <div className="fal-Row-load">
              <dt>runners</dt>
              <dd>{row.runners}</dd>
              <dt>queued</dt>
              <dd>{row.queued ?? 0}</dd>
            </div>
          )}
          {local &&
            row.gpus.map(gpu => (
              <div key={`${gpu.runner}-${gpu.index}`} className="fal-Row-gpu">
                <dt>GPU</dt>
                <dd title={gpu.uuid}>{gpuLine(gpu)}</dd>
              </div>
            ))}
          {local && row.waiting && (
            <div className="fal-Row-gpu">
              <dt>waiting</dt>
              <dd>{row.waiting}</dd>
            </div>
          )}
        </dl>
      )}
      {row.job && row.job.state !== 'ready' && (
        <JobView job={row.job} onCancel={() => void model.cancel(row.name)} />
      )}
      {row.error &&
        (row.status === 'failed' || row.status === 'crash-looping') &&
        row.job?.state !== 'failed' && (
          <div className="fal-Error">{row.error}</div>
        )}
      {actionError && (
        <div className="fal-Error" role="alert">
          {actionError}
        </div>
      )}
      <div className="fal-Row-actions">
        <HTMLSelect
          aria-label="Target"
          title="Where to deploy"
          value={target}
          onChange={event => setTarget(event.currentTarget.value as Target)}
          options={TARGETS.map(value => ({ label: value, value }))}
        />
        <HTMLSelect
          aria-label="Environment"
          title="Where local runners run: this Python environment as it is (kernel), or a virtualenv built from requirements.txt (isolated)"
          value={env}
          disabled={target !== 'local'}
          onChange={event => setEnv(event.currentTarget.value as Env)}
          options={ENVS.map(value => ({
            label: envLabel(value, model.snapshot?.local_env),
            value
          }))}
        />
        <Button
          className="jp-mod-styled jp-mod-accept"
          disabled={deploying}
          title={
            deployed
              ? `Redeploy ${row.name} to ${target} (same name: replaces what runs)`
              : `Deploy ${row.name} to ${target}`
          }
          onClick={() => void model.deploy(row, target, env)}
        >
          Deploy
        </Button>
        <Button
          disabled={!deployed || row.status === 'stopped' || deploying}
          title={`Stop ${row.name}'s runners`}
          onClick={() => void model.stop(row.name)}
          minimal
        >
          Stop
        </Button>
        <Button
          disabled={!deployed}
          title={`Follow ${row.name}'s log`}
          onClick={() => actions.openLogs(row.name)}
          minimal
        >
          Logs
        </Button>
        <Button
          disabled={row.status !== 'ready'}
          title={`Insert %fal_playground ${row.name} in the notebook and run it`}
          onClick={() => actions.openPlayground(row)}
          minimal
        >
          Playground
        </Button>
      </div>
      {!row.relpath && (
        <div className="fal-Note">
          {row.path
            ? `Its project folder is outside the server's root: ${row.path}`
            : 'Deploy it to write its project folder (fal_apps/).'}
        </div>
      )}
      <div className="fal-Row-tools">
        <IconButton
          icon={editIcon}
          label={
            configOpen
              ? `Close the configuration of ${row.name}`
              : `Configure ${row.name}`
          }
          pressed={configOpen}
          disabled={!row.relpath}
          onClick={() => setConfigOpen(!configOpen)}
        />
        <IconButton
          icon={folderIcon}
          label={`Open ${row.name}'s project folder`}
          disabled={!row.relpath}
          onClick={() => actions.openPath(row.relpath!, true)}
        />
        <IconButton
          icon={fileIcon}
          label={`Open ${row.name}'s pyproject.toml`}
          text="pyproject.toml"
          disabled={!row.relpath}
          onClick={() =>
            actions.openPath(`${row.relpath}/pyproject.toml`, false)
          }
        />
        <IconButton
          icon={fileIcon}
          label={`Open ${row.name}'s Dockerfile`}
          text="Dockerfile"
          disabled={!row.relpath}
          onClick={() => actions.openPath(`${row.relpath}/Dockerfile`, false)}
        />
      </div>
      {configOpen && row.relpath && (
        <ConfigForm name={row.name} onClose={() => setConfigOpen(false)} />
      )}
    </li>
  );
}

function JobView(props: { job: IJobView; onCancel: () => void }): JSX.Element {
  const { job } = props;
  const progress = job.progress;
  const running = job.state === 'running';
  return (
    <div className={`fal-Job fal-Job-${job.state}`}>
      <ol className="fal-Steps" aria-label="Deploy steps">
        {stepStates(job).map(step => (
          <li
            key={step.step}
            className={`fal-Step fal-Step-${step.state}`}
            aria-current={step.state === 'current' ? 'step' : undefined}
          >
            {step.title}
          </li>
        ))}
      </ol>
      {progress !== null && (
        <div
          className="fal-Progress"
          role="progressbar"
          aria-label={`Deploying ${job.name} to ${job.target}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(progress * 100)}
        >
          <div
            className="fal-Progress-bar"
            style={{ width: `${Math.round(progress * 100)}%` }}
          />
        </div>
      )}
      {job.lines.length > 0 && (
        <details className="fal-Job-log" open={running}>
          <summary>Deploy log ({job.lines.length} lines)</summary>
          <LogTail lines={job.lines} label={`Deploy log of ${job.name}`} />
        </details>
      )}
      {job.state === 'failed' && job.error && (
        <div className="fal-Error">{job.error}</div>
      )}
      {job.state === 'cancelled' && (
        <div className="fal-Note">{job.error ?? 'Cancelled.'}</div>
      )}
      {running && (
        <Button
          onClick={props.onCancel}
          minimal
          title={`Cancel the deploy of ${job.name}`}
        >
          Cancel
        </Button>
      )}
    </div>
  );
}

/** The last lines of a log, scrolled to the newest. */
function LogTail(props: { lines: string[]; label: string }): JSX.Element {
  const ref = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (ref.current) {
      ref.current.scrollTop = ref.current.scrollHeight;
    }
  }, [props.lines]);
  return (
    <pre ref={ref} tabIndex={0} aria-label={props.label}>
      {props.lines.slice(-50).join('\n')}
    </pre>
  );
}

function CopyValue(props: { label: string; value: string }): JSX.Element {
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      Notification.info(`Copied ${props.label}: ${props.value}`, {
        autoClose: 2000
      });
    } catch {
      Notification.warning(`Cannot copy to the clipboard here: ${props.value}`);
    }
  };
  return (
    <div className="fal-Copy">
      <dt>{props.label}</dt>
      <dd>
        <code title={props.value}>{props.value}</code>
        <button
          className="fal-IconButton"
          aria-label={`Copy the ${props.label} of this app`}
          title={`Copy ${props.label}`}
          onClick={() => void copy()}
        >
          <copyIcon.react tag="span" />
        </button>
      </dd>
    </div>
  );
}

function IconButton(props: {
  icon: LabIcon;
  label: string;
  text?: string;
  pressed?: boolean;
  disabled?: boolean;
  onClick: () => void;
}): JSX.Element {
  return (
    <button
      className="fal-IconButton fal-ToolButton"
      aria-label={props.label}
      aria-pressed={props.pressed}
      title={props.label}
      disabled={props.disabled}
      onClick={props.onClick}
    >
      {props.text ? (
        <span className="fal-ToolButton-text">{props.text}</span>
      ) : (
        <props.icon.react tag="span" />
      )}
    </button>
  );
}
