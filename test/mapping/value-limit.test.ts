/**
 * The Connector's limit of 1 MiB per resource value (spec, Messaging Limitations), applied per
 * value and not per payload: a publish carrying several values is accepted as long as each
 * fits; one value over the limit refuses the publish (uplink) or is not delivered (downlink).
 * The route's whole-payload quirk is checked alongside: the session applies it before the
 * mapping, so an accepted case must also pass it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { openTranslator } from '../../src/mapping/translator.js';
import { shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const MiB = 1048576;
const KiB = 1024;
const VARS = { deviceId: '12345', token: 't', thngId: 'UXYZ', apiKey: 'k' };

function translator() {
  const plan = planFor(m, 'connector', 'evrythng');
  assert.ok(plan, 'connector -> evrythng plan');
  return {
    plan,
    t: openTranslator(plan, VARS, { nowUs: () => 1_700_000_000_000_000, southVersion: 4, northVersion: 4 }),
  };
}

function pub(topic: string, payload: Buffer | string): IPublishPacket {
  const b = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return { cmd: 'publish', topic, payload: b, qos: 1, retain: false, dup: false };
}

const str = (n: number, c = 'x') => c.repeat(n);

test('the connector dialect limits each value to 1 MiB and no longer the whole payload', () => {
  const { plan } = translator();
  assert.equal(plan.south.maxValueBytes, MiB);
  assert.equal(plan.south.quirks.maxPayloadBytes, 0);
});

test('a negative max_value_bytes is a schema error', () => {
  const files = shippedMappings().map((f) =>
    f.path.endsWith('connector.yaml') && f.folder === 'dialects'
      ? { ...f, text: f.text.replace('max_value_bytes: 1048576', 'max_value_bytes: -1') }
      : f,
  );
  const bad = loadMappings(files);
  assert.ok(
    bad.errors.some((e) => e.includes('max_value_bytes')),
    `errors name the key: ${bad.errors.join('; ')}`,
  );
});

describe('uplink from a Connector device', () => {
  const cases: Array<{
    name: string;
    topic: string;
    payload: () => Buffer | string;
    accepted: boolean;
    outputs?: number;
  }> = [
    {
      name: '$resource.batch of two 700 KiB values (1.37 MiB in all) is accepted',
      topic: '$resource.batch',
      payload: () =>
        JSON.stringify([{ timestamp: 1600000000000000, values: { a: str(700 * KiB), b: str(700 * KiB) } }]),
      accepted: true,
      outputs: 2,
    },
    {
      name: '$resource object of two 700 KiB values is accepted',
      topic: '$resource',
      payload: () => JSON.stringify({ a: str(700 * KiB), b: str(700 * KiB) }),
      accepted: true,
      outputs: 2,
    },
    {
      name: '$resource.batch with one value of 1 MiB + 1 is refused',
      topic: '$resource.batch',
      payload: () => JSON.stringify([{ timestamp: 1600000000000000, values: { a: 1, b: str(MiB + 1) } }]),
      accepted: false,
    },
    {
      name: '$resource.batch with a value of exactly 1 MiB (payload over 1 MiB) is accepted',
      topic: '$resource.batch',
      payload: () => JSON.stringify([{ timestamp: 1600000000000000, values: { a: str(MiB) } }]),
      accepted: true,
      outputs: 1,
    },
    {
      name: 'a string of 524,289 two-byte characters (1 MiB + 2 UTF-8 bytes) is refused',
      topic: '$resource',
      payload: () => JSON.stringify({ a: str(524_289, 'é') }),
      accepted: false,
    },
    {
      name: '$resource/{alias} at exactly 1 MiB is accepted',
      topic: '$resource/blob',
      payload: () => Buffer.alloc(MiB, 0x41),
      accepted: true,
      outputs: 1,
    },
    {
      name: '$resource/{alias} of 1 MiB + 1 is refused',
      topic: '$resource/blob',
      payload: () => Buffer.alloc(MiB + 1, 0x41),
      accepted: false,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { plan, t } = translator();
      const p = pub(c.topic, c.payload());
      const o = t.uplink(p);
      assert.ok(!(o instanceof Promise));
      const q = plan.south.quirks;
      if (c.accepted) {
        assert.ok(
          q.maxPayloadBytes === 0 || p.payload.length <= q.maxPayloadBytes,
          "the session's whole-payload check lets it through",
        );
        assert.equal(o.verdict, 'continue', `accepted (${o.reason ?? ''})`);
        assert.equal(o.north?.length, c.outputs);
      } else {
        assert.equal(o.verdict, 'disconnect');
        assert.equal(o.reason, 'value_too_large');
        assert.equal(o.north, undefined);
      }
    });
  }
});

describe('downlink toward a Connector device', () => {
  const cases: Array<{ name: string; value: string; delivered: boolean }> = [
    {
      name: 'a value of exactly 1 MiB (in a larger platform payload) is delivered',
      value: str(MiB),
      delivered: true,
    },
    { name: 'a value of 1 MiB + 1 is dropped', value: str(MiB + 1), delivered: false },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { t } = translator();
      const o = t.downlink(pub('/thngs/UXYZ/properties/target', JSON.stringify([{ value: c.value }])));
      assert.ok(!(o instanceof Promise));
      if (c.delivered) {
        assert.equal(o.verdict, 'continue', `delivered (${o.reason ?? ''})`);
        assert.equal(o.south?.[0]?.topic, '$resource/target');
        assert.equal(o.south?.[0]?.payload.length, c.value.length);
      } else {
        assert.equal(o.verdict, 'drop');
        assert.equal(o.reason, 'value_too_large');
        assert.equal(o.south, undefined);
      }
    });
  }
});
