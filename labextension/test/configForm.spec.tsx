/**
 * @jest-environment jsdom
 */
/** The config editor: the app's keys as fields, saved through the client, errors on their field. */
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import React from 'react';

import { ApiError } from '../src/api';
import { ConfigForm } from '../src/configForm';
import { fakeClient } from './fakes';

const schema = {
  schema: {
    properties: {
      keep_alive: {
        anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }]
      },
      max_concurrency: {
        anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }]
      },
      min_concurrency: {
        anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }]
      }
    }
  },
  editable: ['keep_alive', 'max_concurrency', 'min_concurrency'],
  flags: { keep_alive: '--keep-alive' }
};

function setup() {
  const client = fakeClient();
  (client.configSchema as jest.Mock).mockResolvedValue(schema);
  (client.app as jest.Mock).mockResolvedValue({ config: { keep_alive: 120 } });
  const onClose = jest.fn();
  const onSaved = jest.fn();
  render(
    <ConfigForm
      name="greeter"
      client={client}
      onClose={onClose}
      onSaved={onSaved}
    />
  );
  return { client, onClose, onSaved };
}

describe('ConfigForm', () => {
  it('shows the set keys, focuses the first, and saves the changes', async () => {
    const { client, onSaved } = setup();
    const form = await screen.findByRole('form', {
      name: 'Configuration of greeter'
    });
    const keepAlive = screen.getByRole('textbox', {
      name: /^keep_alive/
    }) as HTMLInputElement;
    expect(keepAlive.value).toBe('120');
    await waitFor(() => expect(document.activeElement).toBe(keepAlive));
    fireEvent.change(keepAlive, { target: { value: '300' } });
    fireEvent.change(screen.getByLabelText('Add a key'), {
      target: { value: 'max_concurrency' }
    });
    fireEvent.change(
      screen.getByRole('textbox', { name: /^max_concurrency/ }),
      {
        target: { value: '2' }
      }
    );
    (client.configure as jest.Mock).mockResolvedValue({
      name: 'greeter',
      config: { keep_alive: 300, max_concurrency: 2 },
      changed: ['pyproject.toml']
    });
    fireEvent.submit(form);
    await screen.findByText(/the next Deploy deploys it/);
    expect(client.configure).toHaveBeenCalledWith('greeter', {
      keep_alive: 300,
      max_concurrency: 2
    });
    expect(onSaved).toHaveBeenCalledWith(['pyproject.toml']);
  });

  it('shows the server’s error on the field it names', async () => {
    const { client } = setup();
    const form = await screen.findByRole('form');
    fireEvent.change(screen.getByLabelText('Add a key'), {
      target: { value: 'min_concurrency' }
    });
    fireEvent.change(
      screen.getByRole('textbox', { name: /^min_concurrency/ }),
      {
        target: { value: '5' }
      }
    );
    (client.configure as jest.Mock).mockRejectedValue(
      new ApiError(
        'min_concurrency must not be greater than max_concurrency',
        400,
        ['min_concurrency']
      )
    );
    fireEvent.submit(form);
    const alert = await screen.findByRole('alert');
    expect(alert.textContent).toContain('greater than max_concurrency');
    expect(
      screen
        .getByRole('textbox', { name: /^min_concurrency/ })
        .getAttribute('aria-invalid')
    ).toBe('true');
  });

  it('closes on Escape', async () => {
    const { onClose } = setup();
    await screen.findByRole('form');
    fireEvent.keyDown(screen.getByRole('textbox', { name: /^keep_alive/ }), {
      key: 'Escape'
    });
    expect(onClose).toHaveBeenCalled();
  });
});
