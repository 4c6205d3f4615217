/**
 * The config editor's fields, read from AppConfig's JSON schema as the server serves it
 * (`GET config/schema`): no second definition of the configuration here. Inputs are text; a
 * field parses its text to a JSON value, and the server validates the values (one set of rules).
 */

/** `GET config/schema`: the JSON schema, the keys a form may change, and their flags. */
export interface IConfigSchema {
  schema: IJsonSchema;
  editable: string[];
  flags: Record<string, string>;
}

export interface IJsonSchema {
  type?: string;
  enum?: unknown[];
  anyOf?: IJsonSchema[];
  items?: IJsonSchema;
  properties?: Record<string, IJsonSchema>;
  $ref?: string;
  $defs?: Record<string, IJsonSchema>;
  title?: string;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  [key: string]: unknown;
}

export type FieldKind =
  | 'integer'
  | 'number'
  | 'boolean'
  | 'choice'
  | 'choices'
  | 'list'
  | 'text'
  | 'json';

export interface IFieldSpec {
  key: string;
  flag: string;
  kind: FieldKind;
  /** The allowed values of a `choice` or of each item of `choices`. */
  options: string[];
  /** A hint for the input (bounds, format). */
  hint: string;
}

function resolve(schema: IJsonSchema, root: IJsonSchema): IJsonSchema {
  if (schema.$ref) {
    const name = schema.$ref.split('/').pop() ?? '';
    return root.$defs?.[name] ?? {};
  }
  return schema;
}

/** The schema without its `null` alternative (pydantic writes `X | None` as `anyOf`). */
function nonNull(schema: IJsonSchema, root: IJsonSchema): IJsonSchema {
  const resolved = resolve(schema, root);
  const variants = (resolved.anyOf ?? []).filter(v => v.type !== 'null');
  return variants.length === 1 ? resolve(variants[0], root) : resolved;
}

function bounds(schema: IJsonSchema): string {
  const low =
    schema.minimum !== undefined
      ? `≥ ${schema.minimum}`
      : schema.exclusiveMinimum !== undefined
        ? `> ${schema.exclusiveMinimum}`
        : '';
  const high = schema.maximum !== undefined ? `≤ ${schema.maximum}` : '';
  return [low, high].filter(Boolean).join(', ');
}

/** The form's fields, in the order of `editable`. */
export function fieldSpecs(doc: IConfigSchema): IFieldSpec[] {
  const root = doc.schema;
  return doc.editable.map(key => {
    const schema = nonNull(root.properties?.[key] ?? {}, root);
    const spec: IFieldSpec = {
      key,
      flag: doc.flags[key] ?? '',
      kind: 'json',
      options: [],
      hint: ''
    };
    if (schema.anyOf) {
      spec.hint = 'JSON';
    } else if (schema.enum) {
      spec.kind = 'choice';
      spec.options = schema.enum.map(String);
    } else if (schema.type === 'integer' || schema.type === 'number') {
      spec.kind = schema.type;
      spec.hint = bounds(schema);
    } else if (schema.type === 'boolean') {
      spec.kind = 'boolean';
      spec.options = ['true', 'false'];
    } else if (schema.type === 'string') {
      spec.kind = 'text';
    } else if (schema.type === 'array' && schema.items) {
      const items = nonNull(schema.items, root);
      if (items.enum) {
        spec.kind = 'choices';
        spec.options = items.enum.map(String);
        spec.hint = `comma-separated: ${spec.options.join(', ')}`;
      } else if (items.type === 'string') {
        spec.kind = 'list';
        spec.hint = 'comma-separated';
      } else {
        spec.hint = 'JSON';
      }
    } else {
      spec.hint = 'JSON';
    }
    return spec;
  });
}

/** The text an input shows for a value (empty: the key is not set). */
export function toText(spec: IFieldSpec, value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (spec.kind === 'choices' || spec.kind === 'list') {
    return Array.isArray(value) ? value.join(', ') : String(value);
  }
  if (spec.kind === 'json') {
    return JSON.stringify(value);
  }
  return String(value);
}

export type Parsed = { value: unknown } | { error: string };

/** The JSON value of an input's text (`null` unsets the key), or why it cannot be one. */
export function fromText(spec: IFieldSpec, text: string): Parsed {
  const trimmed = text.trim();
  if (!trimmed) {
    return { value: null };
  }
  switch (spec.kind) {
    case 'integer':
      return /^-?\d+$/.test(trimmed)
        ? { value: Number(trimmed) }
        : { error: 'must be a whole number' };
    case 'number':
      return Number.isFinite(Number(trimmed))
        ? { value: Number(trimmed) }
        : { error: 'must be a number' };
    case 'boolean':
      return trimmed === 'true' || trimmed === 'false'
        ? { value: trimmed === 'true' }
        : { error: 'must be true or false' };
    case 'choices':
    case 'list':
      return {
        value: trimmed
          .split(/[,\s]+/)
          .map(item => item.trim())
          .filter(Boolean)
      };
    case 'json':
      try {
        return { value: JSON.parse(trimmed) };
      } catch (error) {
        return { error: `is not JSON (${(error as Error).message})` };
      }
    default:
      return { value: trimmed };
  }
}

/**
 * What to send to `PUT apps/<name>/config`: the keys whose value changed (`null` for a key
 * that was removed), or the input errors by key.
 */
export function changes(
  specs: IFieldSpec[],
  initial: Record<string, unknown>,
  texts: Record<string, string>
): { changes: Record<string, unknown>; errors: Record<string, string> } {
  const result: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const spec of specs) {
    if (!(spec.key in texts)) {
      if (initial[spec.key] !== undefined) {
        result[spec.key] = null;
      }
      continue;
    }
    const parsed = fromText(spec, texts[spec.key]);
    if ('error' in parsed) {
      errors[spec.key] = `${spec.key} ${parsed.error}`;
      continue;
    }
    const before = initial[spec.key] ?? null;
    if (JSON.stringify(parsed.value) !== JSON.stringify(before)) {
      result[spec.key] = parsed.value;
    }
  }
  return { changes: result, errors };
}
