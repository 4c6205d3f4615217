/** The status bar item: the local gateway's state and how many local apps are ready; a click opens the panel. */
import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { falIcon } from './icons';
import { statusText } from './model';
import { PanelModel } from './panelModel';

export class FalStatus extends ReactWidget {
  constructor(
    private readonly _model: PanelModel,
    private readonly _open: () => void
  ) {
    super();
    this.addClass('fal-Status-item');
    _model.changed.connect(() => this.update(), this);
  }

  render(): JSX.Element {
    const text = statusText(this._model.snapshot);
    return (
      <button
        className="fal-StatusButton"
        title={`${text}. Open the fal panel`}
        onClick={this._open}
      >
        <falIcon.react tag="span" />
        <span>{text}</span>
      </button>
    );
  }
}
