/**
 * The fal sidebar: this notebook's apps, what is deployed, the other captured projects; per app a
 * target picker, Deploy, Stop, Logs, Playground, the project's files and its config editor; live
 * deploy progress with Cancel.
 */
import {
  Button,
  caretDownIcon,
  caretRightIcon,
  copyIcon,
  editIcon,
  fileIcon,
  folderIcon,
  HTMLSelect,
  LabIcon,
  ReactWidget
} from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import React, { useEffect, useRef, useState } from 'react';

import { ConfigForm } from './configForm';
import { falIcon } from './icons';
import {
  Env,
  ENVS,
  envLabel,
  IJobView,
  IRowView,
  optionLabels,
  readableError,
  Section,
  statusText,
  stepStates,
  Target,
  TARGETS
} from './model';
import { PanelModel } from './panelModel';

/** What the panel's buttons do outside the panel (commands, the notebook, the main area, dialogs). */
export interface IPanelActions {
  goToCell(cellId: string): void;
  openLogs(name: string): void;
  openPlayground(row: IRowView): void;
  openPath(relpath: string, isFolder: boolean): void;
  /** Show a long text (a crash's whole traceback) in a dialog. */
  showText(title: string, text: string): void;
  /** Put a value on the clipboard and say so. */
  copy(label: string, value: string): void;
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
    this.node.tabIndex = -1;
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

  /** Opening the panel puts the keyboard focus in it (its first control). */
  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    const first = this.node.querySelector<HTMLElement>(
      'button:not(:disabled), select:not(:disabled), input:not(:disabled)'
    );
    (first ?? this.node).focus();
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
              : statusText(model.snapshot).includes('starting')
                ? 'Local gateway: starting for a deploy...'
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
            <ErrorText
              text={cell.error ?? ''}
              title={`Why ${cell.name ?? 'this cell'} cannot be deployed`}
              actions={actions}
            />
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
  id: Section;
  rows: IRowView[];
  model: PanelModel;
  actions: IPanelActions;
  empty: React.ReactNode;
  children?: React.ReactNode;
}): JSX.Element {
  const { model } = props;
  const headingId = `fal-section-${props.id}`;
  const hasChildren = React.Children.count(props.children) > 0;
  const collapsed = model.collapsed.has(props.id);
  const Caret = collapsed ? caretRightIcon : caretDownIcon;
  return (
    <section
      className="fal-Section"
      aria-labelledby={headingId}
      data-fal-section={props.id}
    >
      <h3 className="fal-Section-title">
        <button
          id={headingId}
          className="fal-Section-toggle"
          aria-expanded={!collapsed}
          aria-controls={`${headingId}-body`}
          onClick={() => model.toggleSection(props.id)}
        >
          <Caret.react tag="span" className="fal-Section-caret" />
          <span className="fal-Section-name">{props.title}</span>
          <span className="fal-Section-count">{props.rows.length}</span>
        </button>
      </h3>
      <div id={`${headingId}-body`} hidden={collapsed}>
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
      </div>
    </section>
  );
}

export function AppRow(props: {
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
  const configure = useRef<HTMLButtonElement>(null);
  const deploying = row.status === 'deploying';
  const deployed = row.target !== null;
  const actionError = model.actionErrors.get(row.name);
  const local = row.target === 'local' || row.target === 'docker';
  const closeConfig = () => {
    setConfigOpen(false);
    configure.current?.focus();
  };
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
          <span className="fal-Row-name" title={row.name}>
            {row.name}
          </span>
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
        {Object.entries(row.settings).map(([key, value]) => {
          const label = optionLabels({ [key]: value })[0];
          const fromFile = row.fromFile.includes(key);
          return (
            <span
              key={key}
              className={`fal-Chip fal-Chip-option${fromFile ? ' fal-Chip-file' : ''}`}
              title={
                fromFile
                  ? `${key}: set in pyproject.toml (the config editor or by hand); this is what deploys`
                  : `${key}: set in the cell`
              }
            >
              {label}
              {fromFile && <span className="fal-Chip-source"> · file</span>}
            </span>
          );
        })}
      </div>
      {row.conflict && (
        <div className="fal-Warning" role="note">
          {row.conflict}
        </div>
      )}
      {deployed && row.endpointId && (
        <dl className="fal-Row-urls">
          {(
            [
              ['endpoint id', row.endpointId],
              ['url', row.url],
              ['queue url', row.queueUrl]
            ] as const
          ).map(
            ([label, value]) =>
              value && (
                <CopyValue
                  key={label}
                  app={row.name}
                  label={label}
                  value={value}
                  actions={actions}
                />
              )
          )}
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
                <dd title={gpu.uuid}>{gpu.line}</dd>
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
        <JobView
          job={row.job}
          relpath={row.relpath}
          actions={actions}
          onCancel={() => void model.cancel(row.name)}
        />
      )}
      {row.error &&
        (row.status === 'failed' || row.status === 'crash-looping') &&
        row.job?.state !== 'failed' && (
          <ErrorText
            text={row.error}
            relpath={row.relpath}
            title={`Why ${row.name} is ${row.status}`}
            actions={actions}
          />
        )}
      {actionError && (
        <ErrorText
          text={actionError}
          relpath={row.relpath}
          title={`${row.name}: what failed`}
          actions={actions}
          alert
        />
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
          disabled={row.noPlayground !== null}
          title={
            row.noPlayground ??
            `Insert %fal_playground ${row.name} in the notebook and run it`
          }
          onClick={() => actions.openPlayground(row)}
          minimal
        >
          Playground
        </Button>
      </div>
      {row.status === 'ready' && row.playgroundNote && (
        <div className="fal-Note">{row.playgroundNote}</div>
      )}
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
          onClick={() => (configOpen ? closeConfig() : setConfigOpen(true))}
          buttonRef={configure}
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
        <ConfigForm
          name={row.name}
          client={model.client}
          onSaved={() => model.describeAgain()}
          onClose={closeConfig}
        />
      )}
    </li>
  );
}

const ORIGINS: Record<string, string> = {
  magic: 'started by %fal_deploy in a notebook',
  cli: 'started by the fal-notebook command',
  api: 'started from Python (fal_notebook.deploy)'
};

function JobView(props: {
  job: IJobView;
  relpath: string | null;
  actions: IPanelActions;
  onCancel: () => void;
}): JSX.Element {
  const { job } = props;
  const progress = job.progress;
  const running = job.state === 'running';
  const origin = ORIGINS[job.origin];
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
      {origin && <div className="fal-Note">Deploy {origin}.</div>}
      {job.lines.length > 0 && (
        <details className="fal-Job-log" open={running}>
          <summary>Deploy log ({job.lines.length} lines)</summary>
          <LogTail lines={job.lines} label={`Deploy log of ${job.name}`} />
        </details>
      )}
      {(job.state === 'failed' || job.state === 'interrupted') && job.error && (
        <ErrorText
          text={job.error}
          relpath={props.relpath}
          title={`Why the deploy of ${job.name} failed`}
          actions={props.actions}
        />
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

/**
 * An error: its key line first, in a monospace block; the whole text (a traceback) behind
 * "Show", in a dialog. Paths into the gateway's copy of a revision name the project's files.
 */
export function ErrorText(props: {
  text: string;
  title: string;
  actions: IPanelActions;
  relpath?: string | null;
  alert?: boolean;
}): JSX.Element {
  const { key, text } = readableError(props.text, props.relpath ?? null);
  const more = text.trim() !== key;
  return (
    <div className="fal-Error" role={props.alert ? 'alert' : undefined}>
      <pre className="fal-Error-key">{key}</pre>
      {more && (
        <button
          className="fal-LinkButton fal-Error-show"
          aria-label={`Show the full text: ${props.title}`}
          onClick={() => props.actions.showText(props.title, text)}
        >
          Show
        </button>
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

function CopyValue(props: {
  app: string;
  label: string;
  value: string;
  actions: IPanelActions;
}): JSX.Element {
  return (
    <div className="fal-Copy">
      <dt>{props.label}</dt>
      <dd>
        <code title={props.value}>{props.value}</code>
        <button
          className="fal-IconButton"
          aria-label={`Copy the ${props.label} of ${props.app}`}
          title={`Copy the ${props.label} of ${props.app}`}
          onClick={() => props.actions.copy(props.label, props.value)}
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
  buttonRef?: React.Ref<HTMLButtonElement>;
}): JSX.Element {
  return (
    <button
      ref={props.buttonRef}
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
