/**
 * A JSON payload nested too deep for the encoders' stack (tens of thousands of brackets fit in
 * a small packet) is a bad payload: the message is dropped with that reason, both ways, and the
 * session goes on. It used to throw out of the translation, and the session closed the whole
 * connection as an internal error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { openTranslator } from '../../src/mapping/translator.js';
import { pub } from './session-kit.js';
import { shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;

const cases = [
  { name: 'a raw resource value', south: 'connector', north: 'evrythng', up: ['$resource/x', deep(50_000)] },
  {
    name: 'inside a resource object',
    south: 'connector',
    north: 'evrythng',
    up: ['$resource', `{"a":${deep(50_000)}}`],
  },
  {
    name: 'inside an akenza object',
    south: 'akenza',
    north: 'evrythng',
    up: ['/up/S3CR3T/id/dev-1', `{"a":${deep(50_000)}}`],
  },
  {
    name: 'a property update from the platform',
    south: 'connector',
    north: 'evrythng',
    down: ['/thngs/UXYZ/properties/x', `[{"value":${deep(50_000)}}]`],
  },
] as const;

const VARS = {
  deviceId: '12345',
  token: 't',
  thngId: 'UXYZ',
  apiKey: 'k',
  connectorId: 'c',
  secret: 'S3CR3T',
};

for (const c of cases) {
  test(`too deep to encode, ${c.name}: dropped as bad_payload, the next message still translated`, () => {
    const plan = planFor(m, c.south, c.north);
    assert.ok(plan);
    const s = openTranslator(plan, { ...VARS, ...(c.south === 'akenza' ? { deviceId: 'dev-1' } : {}) });
    const [topic, payload] = 'up' in c ? c.up : c.down;
    const o = 'up' in c ? s.uplink(pub(topic, payload)) : s.downlink(pub(topic, payload));
    assert.equal(o.verdict, 'drop');
    assert.equal(o.reason, 'bad_payload');
    const shallow = 'up' in c ? s.uplink(pub(topic, payload.replace(deep(50_000), '[1]'))) : undefined;
    if (shallow) assert.equal(shallow.verdict, 'continue');
  });
}
