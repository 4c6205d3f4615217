/**
 * fal-notebook's JupyterLab extension: the fal sidebar, "Deploy this cell with fal", and a status
 * bar item. All the work happens in the server extension (`fal_notebook.server`), which calls the
 * same Python API as the magics and the CLI.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { FalClient } from './api';
import { deployCell } from './deployCell';
import { falIcon } from './icons';
import { createLogViewer } from './logs';
import { IRowView, Target } from './model';
import { cellIndex, goToCell, insertBelowAndRun } from './notebook';
import { notifier, showText } from './notify';
import { FalPanel, IPanelActions } from './panel';
import { errorMessage, PanelModel } from './panelModel';
import { FalStatus } from './statusbar';

/** The class of a notebook deploy card's Cancel button that names its job (`fal-job-<id>`). */
const JOB_CLASS = /(?:^|\s)fal-job-([0-9a-f]{16})(?:\s|$)/;

const PLUGIN_ID = 'fal-notebook:plugin';

export namespace CommandIDs {
  export const openPanel = 'fal-notebook:open-panel';
  export const deployCell = 'fal-notebook:deploy-cell';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The fal sidebar: see, configure, deploy and call a notebook’s apps.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, IStatusBar, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settings: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const client = new FalClient();
    const model = new PanelModel(client, notifier);

    const playground = async (row: IRowView) => {
      const notebook = tracker.currentWidget;
      if (!notebook) {
        notifier.info(
          `Open a notebook to show the Playground of ${row.name} in it.`
        );
        return;
      }
      app.shell.activateById(notebook.id);
      const at = row.cellId ? cellIndex(notebook, row.cellId) : -1;
      const index = at !== -1 ? at : notebook.content.activeCellIndex;
      try {
        await insertBelowAndRun(notebook, index, `%fal_playground ${row.name}`);
      } catch (error) {
        notifier.error(
          `Cannot show the Playground of ${row.name}: ${errorMessage(error)}`
        );
      }
    };

    const actions: IPanelActions = {
      goToCell: cellId => {
        const notebook = model.notebook;
        if (notebook) {
          app.shell.activateById(notebook.id);
          void goToCell(notebook, cellId);
        }
      },
      openLogs: name => {
        const id = `fal-notebook-logs-${name}`;
        const open = Array.from(app.shell.widgets('main')).find(
          w => w.id === id
        );
        if (open) {
          app.shell.activateById(id);
          return;
        }
        app.shell.add(createLogViewer(name, client), 'main', {
          mode: 'split-bottom'
        });
      },
      showText,
      copy: (label, value) => {
        navigator.clipboard.writeText(value).then(
          () => notifier.info(`Copied the ${label}: ${value}`),
          () => notifier.info(`Cannot copy to the clipboard here: ${value}`)
        );
      },
      openPlayground: row => void playground(row),
      openPath: (relpath, isFolder) => {
        void app.commands.execute(
          isFolder ? 'filebrowser:go-to-path' : 'docmanager:open',
          { path: isFolder ? `/${relpath}` : relpath }
        );
      }
    };

    const panel = new FalPanel(model, actions);
    panel.title.label = 'fal';
    panel.title.caption = 'fal';
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, 'fal-notebook-panel');

    const followNotebook = () => model.setNotebook(tracker.currentWidget);
    tracker.currentChanged.connect(followNotebook);
    followNotebook();

    document.addEventListener('visibilitychange', () => {
      model.setVisible(panel.isVisible && !document.hidden);
      if (!document.hidden) {
        model.refreshSoon();
      }
    });
    // a cell may have deployed or stopped an app (%fal_deploy, %fal_stop): the status bar follows
    NotebookActions.executed.connect(() => model.refreshSoon());
    // a notebook's deploy card: its kernel is busy with the deploy, so its Cancel goes through the server
    document.addEventListener(
      'click',
      event => {
        const button = (event.target as Element | null)?.closest?.(
          '.fal-pg-cancel'
        );
        const job = button?.className.match(JOB_CLASS)?.[1];
        if (job) {
          void model.cancelJob(job);
        }
      },
      true
    );

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the fal Panel',
      caption: 'See, configure, deploy and call this notebook’s apps',
      icon: falIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.deployCell, {
      label: 'Deploy this cell with fal',
      caption: 'Capture this cell as a fal app, run it, and deploy it',
      icon: falIcon,
      isEnabled: () => tracker.activeCell?.model.type === 'code',
      execute: async () => {
        const notebook = tracker.currentWidget;
        if (!notebook) {
          return;
        }
        app.shell.activateById(panel.id);
        app.shell.activateById(notebook.id);
        await deployCell(notebook, model);
      }
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'fal' });
    palette?.addItem({ command: CommandIDs.deployCell, category: 'fal' });

    if (settings) {
      void settings.load(PLUGIN_ID).then(loaded => {
        const apply = () => {
          model.defaultTarget = loaded.get('defaultTarget').composite as Target;
          panel.update();
        };
        apply();
        loaded.changed.connect(apply);
      });
    }

    statusBar?.registerStatusItem('fal-notebook:status', {
      item: new FalStatus(
        model,
        () => void app.commands.execute(CommandIDs.openPanel)
      ),
      align: 'left',
      rank: 50
    });
    void model.refresh();
  }
};

export default plugin;
