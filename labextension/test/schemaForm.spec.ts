import {
  changes,
  fieldSpecs,
  fromText,
  IConfigSchema,
  toText
} from '../src/schemaForm';

/** A piece of AppConfig's schema as pydantic writes it (served by `GET config/schema`). */
const doc: IConfigSchema = {
  schema: {
    $defs: {
      HealthCheck: { type: 'object', properties: { path: { type: 'string' } } }
    },
    properties: {
      keep_alive: {
        anyOf: [{ type: 'integer', minimum: 0 }, { type: 'null' }],
        default: null
      },
      num_gpus: {
        anyOf: [{ type: 'integer', minimum: 1, maximum: 8 }, { type: 'null' }]
      },
      auth: {
        anyOf: [
          { enum: ['private', 'public', 'shared'], type: 'string' },
          { type: 'null' }
        ]
      },
      app_scale_settings: { anyOf: [{ type: 'boolean' }, { type: 'null' }] },
      machine_type: {
        anyOf: [
          {
            type: 'array',
            items: { enum: ['XS', 'GPU-H100'], type: 'string' }
          },
          { type: 'null' }
        ]
      },
      secrets: {
        anyOf: [{ type: 'array', items: { type: 'string' } }, { type: 'null' }]
      },
      cmd: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }] },
      health_check: {
        anyOf: [{ $ref: '#/$defs/HealthCheck' }, { type: 'null' }]
      }
    }
  },
  editable: [
    'keep_alive',
    'num_gpus',
    'auth',
    'app_scale_settings',
    'machine_type',
    'secrets',
    'cmd',
    'health_check'
  ],
  flags: { keep_alive: '--keep-alive', auth: '--auth' }
};

describe('fieldSpecs', () => {
  it('reads each editable key’s kind from the schema, in order', () => {
    const specs = fieldSpecs(doc);
    expect(specs.map(s => [s.key, s.kind])).toEqual([
      ['keep_alive', 'integer'],
      ['num_gpus', 'integer'],
      ['auth', 'choice'],
      ['app_scale_settings', 'boolean'],
      ['machine_type', 'choices'],
      ['secrets', 'list'],
      ['cmd', 'text'],
      ['health_check', 'json']
    ]);
    expect(specs[0].flag).toBe('--keep-alive');
    expect(specs[1].hint).toBe('≥ 1, ≤ 8');
    expect(specs[2].options).toEqual(['private', 'public', 'shared']);
    expect(specs[4].options).toEqual(['XS', 'GPU-H100']);
  });
});

describe('text and values', () => {
  const specs = Object.fromEntries(fieldSpecs(doc).map(s => [s.key, s]));

  it('parses what a user types, and says what is wrong', () => {
    expect(fromText(specs.keep_alive, ' 300 ')).toEqual({ value: 300 });
    expect(fromText(specs.keep_alive, '3.5')).toEqual({
      error: 'must be a whole number'
    });
    expect(fromText(specs.keep_alive, '')).toEqual({ value: null });
    expect(fromText(specs.app_scale_settings, 'true')).toEqual({ value: true });
    expect(fromText(specs.machine_type, 'XS, GPU-H100')).toEqual({
      value: ['XS', 'GPU-H100']
    });
    expect(fromText(specs.health_check, '{"path": "/health"}')).toEqual({
      value: { path: '/health' }
    });
    expect(fromText(specs.health_check, '{path')).toHaveProperty('error');
    expect(fromText(specs.cmd, 'python -m http.server $PORT')).toEqual({
      value: 'python -m http.server $PORT'
    });
  });

  it('shows values as text the same way back', () => {
    expect(toText(specs.machine_type, ['XS', 'GPU-H100'])).toBe('XS, GPU-H100');
    expect(toText(specs.health_check, { path: '/h' })).toBe('{"path":"/h"}');
    expect(toText(specs.keep_alive, undefined)).toBe('');
  });

  it('sends only what changed, null for a removed key, and no request on input errors', () => {
    const all = fieldSpecs(doc);
    const initial = { keep_alive: 30, auth: 'public', secrets: ['A'] };
    expect(
      changes(all, initial, {
        keep_alive: '30',
        auth: 'private',
        secrets: 'A',
        num_gpus: '2'
      })
    ).toEqual({
      changes: { auth: 'private', num_gpus: 2 },
      errors: {}
    });
    expect(
      changes(all, initial, { auth: 'public', secrets: 'A' }).changes
    ).toEqual({ keep_alive: null });
    expect(
      changes(all, initial, {
        keep_alive: 'soon',
        auth: 'public',
        secrets: 'A'
      }).errors
    ).toEqual({
      keep_alive: 'keep_alive must be a whole number'
    });
  });
});
