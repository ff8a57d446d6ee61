/**
 * JSON Schemas of the mapping files (dialect, route, pair, credentials), checked with ajv.
 * Structure only: the semantic rules (captures, overlaps, directions) live in compile.ts.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { CODECS } from './codecs.js';
import { KINDS } from './model.js';
import type { Reporter, Source } from './source.js';

const name = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]*$' };
const kind = { enum: [...KINDS] };
const textOrList = { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }] };

const payload = {
  type: 'object',
  additionalProperties: false,
  properties: {
    codec: { enum: [...CODECS] },
    key: { type: 'string' },
    value: { type: 'string' },
    time: { type: 'string' },
    values: { type: 'string' },
    unit: { enum: ['us', 'ms', 's'] },
    fields: { type: 'object', additionalProperties: { type: 'string' } },
    add: { type: 'object' },
    content_type: { type: 'string' },
    stamp: { type: 'boolean' },
    name: { type: 'string', minLength: 1 },
  },
};

const topicRule = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'topic'],
  properties: {
    name,
    topic: { type: 'string', minLength: 1 },
    also: { type: 'array', items: { type: 'string', minLength: 1 } },
    up: kind,
    down: kind,
    payload,
    join: { type: 'string', minLength: 1 },
    split: { type: 'string', minLength: 1 },
    scheme: { type: 'string' },
    subscribe: { type: 'string' },
    qos: { enum: [0, 1, 2] },
    key: { type: 'string', minLength: 1 },
    // Identity variables the session must have for this rule to be usable (e.g. an account scope).
    needs: { type: 'array', items: name },
    // Topic level <-> canonical key aliases for the {key} capture (foxtrackr bat <-> battery).
    names: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
  },
  anyOf: [{ required: ['up'] }, { required: ['down'] }],
};

const jwtPassword = {
  type: 'object',
  additionalProperties: false,
  required: ['jwt'],
  properties: {
    jwt: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: {
        key: { type: 'string' },
        alg: { enum: ['RS256', 'ES256', 'auto'] },
        claims: { type: 'object' },
        ttl: { type: 'integer', minimum: 60 },
      },
    },
  },
};

const southScheme = {
  type: 'object',
  additionalProperties: false,
  required: ['scheme'],
  properties: {
    scheme: name,
    client_id: textOrList,
    username: textOrList,
    // A template, alternatives, or a JWT the device signs: verified with a key from its record.
    password: {
      oneOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
        {
          type: 'object',
          additionalProperties: false,
          required: ['jwt'],
          properties: {
            jwt: {
              type: 'object',
              additionalProperties: false,
              required: ['key'],
              properties: { key: { type: 'string' }, audience: { type: 'string' } },
            },
          },
        },
      ],
    },
    common_name: { type: 'string' },
  },
};

const northScheme = {
  type: 'object',
  additionalProperties: false,
  required: ['scheme'],
  properties: {
    scheme: name,
    client_id: { type: 'string' },
    username: { type: 'string' },
    password: { oneOf: [{ type: 'string' }, jwtPassword] },
  },
};

export const dialectSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dialect', 'topics'],
  properties: {
    dialect: name,
    description: { type: 'string' },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      properties: {
        versions: { type: 'array', items: { enum: [3, 4, 5] }, minItems: 1 },
        keepalive_max: { type: 'integer', minimum: 0 },
        max_qos: { enum: [0, 1, 2] },
        persistent: { type: 'boolean' },
      },
    },
    escape: { enum: ['none', 'percent'] },
    identity: { type: 'array', items: name },
    options: { type: 'array', items: name },
    topics: { type: 'array', items: topicRule, minItems: 1 },
    subscriptions: {
      type: 'object',
      additionalProperties: false,
      properties: {
        automatic: { type: 'boolean' },
        allowed: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['filter', 'kinds'],
            properties: {
              filter: { type: 'string' },
              kinds: { type: 'array', items: kind, minItems: 1 },
              needs: { type: 'array', items: name },
            },
          },
        },
        granted_qos: { enum: [0, 1, 2] },
        otherwise: { enum: ['failure', 'silent', 'disconnect'] },
      },
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        south: { type: 'array', items: southScheme },
        north: { type: 'array', items: northScheme },
        anonymous: { enum: ['reject', 'provision_only'] },
      },
    },
    gateway: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: { key: { type: 'string' }, errors: { type: 'string' } },
    },
    quirks: {
      type: 'object',
      additionalProperties: false,
      properties: {
        session_present: { enum: ['north', 'always', 'never'] },
        clean_session: { enum: ['pass', 'ignore'] },
        will: { enum: ['pass', 'ignore'] },
        retain: { enum: ['pass', 'ignore'] },
        qos2: { enum: ['pass', 'as_qos0', 'as_qos1'] },
        max_downlink_qos: { enum: [0, 1, 2] },
        dup_with_qos0: { enum: ['pass', 'disconnect'] },
        client_acks: { enum: ['pass', 'disconnect'] },
        unknown_topic: { enum: ['drop', 'disconnect', 'error'] },
        unsubscribe: { enum: ['pass', 'ack_only'] },
        max_payload_bytes: { type: 'integer', minimum: 0 },
        max_value_bytes: { type: 'integer', minimum: 0 },
      },
    },
  },
};

const prefer = {
  type: 'object',
  additionalProperties: false,
  properties: { samples: { enum: ['one_per_key', 'one_list'] } },
};
const kindMap = {
  type: 'object',
  additionalProperties: false,
  properties: {
    up: { type: 'object', propertyNames: kind, additionalProperties: kind },
    down: { type: 'object', propertyNames: kind, additionalProperties: kind },
  },
};

export const routeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['route', 'south', 'north'],
  properties: {
    route: name,
    description: { type: 'string' },
    south: { type: 'string' },
    north: { type: 'string' },
    url: { type: 'string' },
    connection: { enum: ['direct', 'gateway'] },
    prefer,
    kinds: kindMap,
    vars: { type: 'object', additionalProperties: { type: 'string' } },
    identity: {
      type: 'object',
      additionalProperties: false,
      properties: {
        file: { type: 'string' },
        key: textOrList,
        store: { type: 'string' },
        // Devices activate themselves (south provisioning) and get these north variables.
        provision: { enum: ['token', 'password'] },
        north: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    // A file whose JSON list answers the south dialect's content requests.
    content: { type: 'string' },
    // Automatic north subscriptions at QoS 1 in a persistent session: the north broker keeps
    // the changes made while a device is offline and delivers them when it reconnects.
    offline_sync: { type: 'boolean' },
    // false: an uplink-only route (devices that never take downlinks). No north subscription
    // at all (none automatic, a SUBSCRIBE is refused) and a clean north session.
    downlinks: { type: 'boolean' },
    // South clients are gateways (ClearBlade style): each attached device gets a session of its own.
    south_gateway: { type: 'boolean' },
  },
};

const { name: _ruleName, ...ruleFields } = topicRule.properties;
const ruleOverrides = {
  type: 'object',
  additionalProperties: { type: 'object', additionalProperties: false, properties: ruleFields },
};

export const pairSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['south', 'north'],
  properties: {
    description: { type: 'string' },
    south: { type: 'string' },
    north: { type: 'string' },
    prefer,
    kinds: kindMap,
    // Replaces fields of named topic rules of either dialect, for this pair only.
    override: {
      type: 'object',
      additionalProperties: false,
      properties: { south: ruleOverrides, north: ruleOverrides },
    },
  },
};

export const credentialsSchema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['south', 'north'],
    properties: {
      south: { type: 'object', additionalProperties: { type: ['string', 'number'] }, minProperties: 1 },
      north: { type: 'object', additionalProperties: { type: ['string', 'number'] } },
      // Many devices for one login (an application account): each device's own variables.
      devices: {
        type: 'array',
        minItems: 1,
        items: { type: 'object', additionalProperties: { type: ['string', 'number'] }, minProperties: 1 },
      },
      // Named groups of those devices: group name -> the devices' ids.
      groups: {
        type: 'object',
        additionalProperties: { type: 'array', items: { type: ['string', 'number'] } },
      },
    },
  },
};

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = {
  dialect: ajv.compile(dialectSchema),
  route: ajv.compile(routeSchema),
  pair: ajv.compile(pairSchema),
  credentials: ajv.compile(credentialsSchema),
};

export type FileKind = keyof typeof validators;

/** Validates a source against its schema; reports every error with its position. */
export function validate(kindName: FileKind, src: Source, report: Reporter): boolean {
  return validateDetailed(kindName, src, report) === 'ok';
}

/**
 * Like validate; 'unknown_keys' when the only problems are unknown keys, so that the
 * semantic checks can still run and every error of the file is reported together.
 */
export function validateDetailed(
  kindName: FileKind,
  src: Source,
  report: Reporter,
): 'ok' | 'unknown_keys' | 'invalid' {
  const v = validators[kindName];
  if (v(src.value)) return 'ok';
  const onlyUnknown = (v.errors ?? []).every((e) => e.keyword === 'additionalProperties');
  const seen = new Set<string>();
  for (const e of v.errors ?? []) {
    const line = describe(e);
    if (!line) continue;
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
    const key = e.keyword === 'additionalProperties';
    const fullPath = key ? [...path, (e.params as { additionalProperty: string }).additionalProperty] : path;
    const sig = `${fullPath.join('/')}|${line.msg}`;
    if (seen.has(sig)) continue;
    seen.add(sig);
    report.error(src, fullPath, line.msg, line.hint, key);
  }
  return onlyUnknown ? 'unknown_keys' : 'invalid';
}

function describe(e: ErrorObject): { msg: string; hint?: string } | undefined {
  const where = e.instancePath ? `'${e.instancePath.slice(1).replace(/\//g, '.')}'` : 'the document';
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        msg: `unknown key '${(e.params as { additionalProperty: string }).additionalProperty}' in ${where}`,
        hint: 'see docs/mapping-reference.md for the keys allowed here',
      };
    case 'required':
      return {
        msg: `missing key '${(e.params as { missingProperty: string }).missingProperty}' in ${where}`,
      };
    case 'enum':
      return {
        msg: `${where} must be one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`,
      };
    case 'anyOf':
      return e.instancePath.includes('topics')
        ? { msg: `${where} needs 'up' or 'down'`, hint: 'say which direction carries which kind' }
        : { msg: `${where} is not valid` };
    case 'oneOf':
      return undefined;
    case 'if':
      return undefined;
    default:
      return { msg: `${where} ${e.message ?? 'is not valid'}` };
  }
}
