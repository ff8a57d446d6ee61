/**
 * Payload codecs: decode/encode of each built-in shape, units, and the hand-written list
 * encoder producing exactly what JSON.stringify would.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeCodec } from '../../src/mapping/codecs.js';
import type { Canonical, Sample } from '../../src/mapping/model.js';
import { convertKind } from '../../src/mapping/plan.js';

const msg = (): Canonical => ({ kind: 'samples', qos: 0, retain: false });

test('key_value_list and value_list encode exactly like JSON.stringify, for awkward values too', () => {
  const values: unknown[] = [
    'quote " and \\ backslash',
    'ünïcødé ✓',
    null,
    0,
    -1.5e-7,
    true,
    { a: [1, { b: 'c' }] },
    [],
    '',
  ];
  const kv = makeCodec(
    { codec: 'key_value_list', key: 'k"ey', value: 'value', time: 'ts', unit: 'ms' },
    'value',
  );
  const vl = makeCodec(
    { codec: 'value_list', value: 'v', time: 'timestamp', unit: 's', stamp: true },
    'value',
  );
  const samples: Sample[] = values.map((value, i) =>
    i % 2 ? { key: `k${i}"`, value, ts: 1_700_000_000_123_456 } : { key: `k${i}`, value },
  );
  const expectKv = samples.map((s) => ({
    'k"ey': s.key,
    value: s.value,
    ...(s.ts ? { ts: Math.round(s.ts / 1000) } : {}),
  }));
  assert.equal(kv.encode(msg(), samples, {}, 0).toString(), JSON.stringify(expectKv));
  const expectVl = samples.map((s) => ({
    v: s.value,
    timestamp: Math.round((s.ts ?? 42_000_000) / 1_000_000),
  }));
  assert.equal(vl.encode(msg(), samples, {}, 42_000_000).toString(), JSON.stringify(expectVl));
});

test('lists decode back to the same samples, times converted to µs', () => {
  const kv = makeCodec({ codec: 'key_value_list', time: 'timestamp', unit: 'ms' }, 'value');
  const out = msg();
  assert.equal(
    kv.decode(
      Buffer.from('[{"key":"a","value":{"x":1},"timestamp":1700000000000},{"key":"b","value":"s"}]'),
      undefined,
      out,
    ),
    undefined,
  );
  assert.deepEqual(out.samples, [
    { key: 'a', value: { x: 1 }, ts: 1_700_000_000_000_000 },
    { key: 'b', value: 's' },
  ]);
  assert.equal(
    kv.decode(Buffer.from('[{"key":"a"}]'), undefined, msg()),
    'bad_payload',
    'an item without a value',
  );
  assert.equal(kv.decode(Buffer.from('not json'), undefined, msg()), 'bad_payload');
});

test('value passes the original bytes through; object, batch and envelope round trip', () => {
  const value = makeCodec({}, 'value');
  const raw = Buffer.from('23.50');
  const m1 = msg();
  value.decode(raw, 'temp', m1);
  assert.equal(value.encode(m1, m1.samples ?? [], {}, 0), raw, 'the same Buffer');

  const batch = makeCodec({ codec: 'batch', time: 'timestamp', values: 'values', unit: 'us' }, 'value');
  const text = '[{"timestamp":1,"values":{"a":1,"b":2}},{"timestamp":2,"values":{"a":3}}]';
  const m2 = msg();
  batch.decode(Buffer.from(text), undefined, m2);
  assert.equal(batch.encode(m2, m2.samples ?? [], {}, 0).toString(), text);

  const env = makeCodec(
    {
      codec: 'envelope',
      time: 'timeMs',
      unit: 'ms',
      fields: { bat: 'battery' },
      add: { version: 3, deviceId: '{deviceId}' },
    },
    'value',
  );
  const m3 = msg();
  env.decode(Buffer.from('{"version":3,"deviceId":"d","timeMs":5,"battery":{"l":1}}'), 'bat', m3);
  assert.deepEqual(m3.samples, [{ key: 'bat', value: { l: 1 }, ts: 5000 }]);
  assert.equal(
    env.encode(m3, m3.samples ?? [], { deviceId: 'd' }, 0).toString(),
    '{"version":3,"deviceId":"d","timeMs":5,"battery":{"l":1}}',
  );
});

test('a key named __proto__ is kept by every shape that writes keys (object, batch, samples → body)', () => {
  const samples: Sample[] = [
    { key: '__proto__', value: { a: 1 } },
    { key: 'b', value: 2 },
  ];
  const object = makeCodec({ codec: 'object' }, 'value');
  assert.equal(object.encode(msg(), samples, {}, 0).toString(), '{"__proto__":{"a":1},"b":2}');
  const batch = makeCodec({ codec: 'batch', time: 'timestamp', values: 'values', unit: 'us' }, 'value');
  assert.equal(
    batch.encode(msg(), samples, {}, 7).toString(),
    '[{"timestamp":7,"values":{"__proto__":{"a":1},"b":2}}]',
  );
  const m: Canonical = { ...msg(), samples: samples.map((s) => ({ ...s })) };
  assert.equal(convertKind(m, 'event'), undefined);
  assert.equal(m.body?.toString(), '{"__proto__":{"a":1},"b":2}');
});
