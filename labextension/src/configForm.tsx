/**
 * The config editor of one app: its set `[tool.fal.apps.<name>]` keys as inputs, any other key
 * of AppConfig's schema to add, saved through `PUT apps/<name>/config`; the server's validation
 * error shows on the field it names.
 */
import { Button, closeIcon, HTMLSelect } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import { ApiError, IFalClient } from './api';
import { changes, fieldSpecs, IFieldSpec, toText } from './schemaForm';

const schemas = new WeakMap<IFalClient, Promise<IFieldSpec[]>>();

/** The form's fields (the schema is fetched once per client). */
function loadSpecs(client: IFalClient): Promise<IFieldSpec[]> {
  let specs = schemas.get(client);
  if (!specs) {
    specs = client.configSchema().then(fieldSpecs);
    specs.catch(() => schemas.delete(client));
    schemas.set(client, specs);
  }
  return specs;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The config editor of one app. It writes `[tool.fal.apps.<name>]` in the app's pyproject.toml;
 * what it saves is what the next Deploy deploys (a capture keeps a key the cell did not change).
 * Escape closes it.
 */
export function ConfigForm(props: {
  name: string;
  client: IFalClient;
  onClose: () => void;
  onSaved?: (changed: string[]) => void;
}): JSX.Element {
  const { name, client } = props;
  const form = useRef<HTMLFormElement>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [specs, setSpecs] = useState<IFieldSpec[] | null>(null);
  const [initial, setInitial] = useState<Record<string, unknown>>({});
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    let live = true;
    Promise.all([loadSpecs(client), client.app(name)])
      .then(([loaded, detail]) => {
        if (!live) {
          return;
        }
        const config = detail.config ?? {};
        const present: Record<string, string> = {};
        for (const spec of loaded) {
          if (config[spec.key] !== undefined) {
            present[spec.key] = toText(spec, config[spec.key]);
          }
        }
        setSpecs(loaded);
        setInitial(config);
        setTexts(present);
      })
      .catch(error => live && setFormError(errorMessage(error)));
    return () => {
      live = false;
    };
  }, [name, client]);

  useEffect(() => {
    // the form opened: the keyboard goes to its first field
    form.current
      ?.querySelector<HTMLElement>('input, select, button')
      ?.focus({ preventScroll: true });
  }, [specs !== null]);

  if (!specs) {
    return (
      <div className="fal-Config" role="status">
        {formError ?? `Loading the configuration of ${name}...`}
      </div>
    );
  }
  const shown = specs.filter(spec => spec.key in texts);
  const addable = specs.filter(spec => !(spec.key in texts));

  const edit = (key: string, text: string) => {
    setTexts({ ...texts, [key]: text });
    if (errors[key]) {
      const rest = { ...errors };
      delete rest[key];
      setErrors(rest);
    }
  };
  const remove = (key: string) => {
    const rest = { ...texts };
    delete rest[key];
    setTexts(rest);
  };

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    const result = changes(specs, initial, texts);
    setErrors(result.errors);
    setFormError(null);
    setSaved(null);
    if (Object.keys(result.errors).length) {
      return;
    }
    if (!Object.keys(result.changes).length) {
      setFormError('Nothing changed.');
      return;
    }
    setSaving(true);
    try {
      const answer = await client.configure(name, result.changes);
      setInitial(answer.config);
      setSaved(
        `Saved in ${answer.changed.join(', ') || 'pyproject.toml (unchanged)'}: the next Deploy deploys it.`
      );
      props.onSaved?.(answer.changed);
    } catch (error) {
      const message = errorMessage(error);
      const fields = error instanceof ApiError ? error.fields : [];
      const onFields = fields.filter(field => field in texts);
      setErrors(Object.fromEntries(onFields.map(field => [field, message])));
      if (!onFields.length) {
        setFormError(message);
      }
    } finally {
      setSaving(false);
    }
  };

  return (
    <form
      ref={form}
      className="fal-Config"
      aria-label={`Configuration of ${name}`}
      onSubmit={save}
      onKeyDown={event => {
        if (event.key === 'Escape') {
          event.preventDefault();
          event.stopPropagation();
          props.onClose();
        }
      }}
    >
      <div className="fal-Config-title">
        <code>[tool.fal.apps.{name}]</code> in pyproject.toml
      </div>
      {shown.length === 0 && (
        <div className="fal-Empty">No key is set: add one below.</div>
      )}
      {shown.map(spec => (
        <Field
          key={spec.key}
          app={name}
          spec={spec}
          text={texts[spec.key]}
          error={errors[spec.key]}
          onChange={text => edit(spec.key, text)}
          onRemove={() => remove(spec.key)}
        />
      ))}
      <div className="fal-Config-add">
        <HTMLSelect
          aria-label="Add a key"
          value=""
          onChange={event => {
            if (event.currentTarget.value) {
              edit(event.currentTarget.value, '');
            }
          }}
          options={[
            { label: 'Add a key...', value: '' },
            ...addable.map(spec => ({ label: spec.key, value: spec.key }))
          ]}
        />
      </div>
      {formError && (
        <div className="fal-Error" role="alert">
          {formError}
        </div>
      )}
      {saved && (
        <div className="fal-Note" role="status">
          {saved}
        </div>
      )}
      <div className="fal-Config-actions">
        <Button
          type="submit"
          disabled={saving}
          className="jp-mod-styled jp-mod-accept"
        >
          {saving ? 'Saving...' : 'Save'}
        </Button>
        <Button type="button" onClick={props.onClose} minimal>
          Close
        </Button>
      </div>
    </form>
  );
}

function Field(props: {
  app: string;
  spec: IFieldSpec;
  text: string;
  error?: string;
  onChange: (text: string) => void;
  onRemove: () => void;
}): JSX.Element {
  const { spec, error } = props;
  const id = `fal-config-${props.app}-${spec.key}`;
  const describedBy = error
    ? `${id}-error`
    : spec.hint
      ? `${id}-hint`
      : undefined;
  const common = {
    id,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': describedBy
  };
  const input =
    spec.kind === 'choice' || spec.kind === 'boolean' ? (
      <HTMLSelect
        {...common}
        value={props.text}
        onChange={event => props.onChange(event.currentTarget.value)}
        options={[
          { label: '(not set)', value: '' },
          ...spec.options.map(option => ({ label: option, value: option }))
        ]}
      />
    ) : (
      <input
        {...common}
        className="jp-mod-styled fal-Field-input"
        type="text"
        inputMode={
          spec.kind === 'integer' || spec.kind === 'number'
            ? 'numeric'
            : undefined
        }
        value={props.text}
        placeholder={spec.hint}
        onChange={event => props.onChange(event.currentTarget.value)}
      />
    );
  return (
    <div
      className={`fal-Field${error ? ' fal-mod-invalid' : ''}`}
      data-fal-key={spec.key}
    >
      <label htmlFor={id} className="fal-Field-label">
        <code>{spec.key}</code>
        {spec.flag && <span className="fal-Field-flag">{spec.flag}</span>}
      </label>
      <div className="fal-Field-row">
        {input}
        <button
          type="button"
          className="fal-IconButton"
          aria-label={`Remove ${spec.key}`}
          title={`Remove ${spec.key} (unset it)`}
          onClick={props.onRemove}
        >
          <closeIcon.react tag="span" />
        </button>
      </div>
      {spec.hint && !error && (
        <div id={`${id}-hint`} className="fal-Field-hint">
          {spec.hint}
        </div>
      )}
      {error && (
        <div id={`${id}-error`} className="fal-Field-error" role="alert">
          {error}
        </div>
      )}
    </div>
  );
}
