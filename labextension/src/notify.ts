/**
 * The panel's messages as JupyterLab notifications: they close by themselves (an error after a
 * while, with "Show" for its whole text in a dialog, as jupyterlab-git does), so none pile up.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import React from 'react';

import { INotifier } from './panelModel';

/** A long text (a traceback) in a dialog, in a monospace block that keeps its lines. */
export function showText(title: string, text: string): void {
  void showDialog({
    title,
    body: React.createElement('pre', { className: 'fal-TextDialog' }, text),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

export const notifier: INotifier = {
  success: message => void Notification.success(message, { autoClose: 5000 }),
  info: message => void Notification.info(message, { autoClose: 4000 }),
  error: (message, details) =>
    void Notification.error(message, {
      autoClose: 10000,
      actions: [
        {
          label: 'Show',
          caption: 'Show the whole message',
          callback: () => showText('What failed', details ?? message)
        }
      ]
    })
};
