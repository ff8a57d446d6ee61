/**
 * convertKind between property samples and an opaque body (Connector values becoming a
 * ClearBlade event, an akenza object becoming EVRYTHNG properties): the body is exactly the
 * JSON text of the object the samples make (numbers as they came), whether a single sample's
 * bytes are used as they are or parsed, and the message keeps one form only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonText } from '../../src/mapping/json-literal.js';
import type { Canonical, Sample } from '../../src/mapping/model.js';
import { sampleValue } from '../../src/mapping/model.js';
import { convertKind } from '../../src/mapping/plan.js';

const msgOf = (samples: Sample[]): Canonical => ({ kind: 'samples', samples, qos: 0, retain: false });
const expected = (samples: Sample[]): string => {
  const o: Record<string, unknown> = {};
  for (const s of samples) o[s.key] = sampleValue(s);
  return `{${Object.keys(o)
    .map((k) => `${JSON.stringify(k)}:${jsonText(o[k])}`)
    .join(',')}}`;
};

const cases: Array<[string, Sample[]]> = [
  ['one integer, as received', [{ key: 'temperature', raw: Buffer.from('23') }]],
  ['one plain string, as received', [{ key: 't', raw: Buffer.from('"abc@123"') }]],
  ['one number that parsing would rewrite (1.50), kept as written', [{ key: 't', raw: Buffer.from('1.50') }]],
  [
    'numbers parsing would rewrite, in several samples and inside a value',
    [
      { key: 'big', raw: Buffer.from('12345678901234567890') },
      { key: 'pos', raw: Buffer.from('{"lat": 1.50, "n": [1E2, -0]}') },
    ],
  ],
  ['one string with an escape', [{ key: 't', raw: Buffer.from('"a\\u0041"') }]],
  ['one text that is not JSON (kept as a string)', [{ key: 't', raw: Buffer.from('hello') }]],
  ['one object', [{ key: 'pos', raw: Buffer.from('{"lat": 1, "lon": 2}') }]],
  ['one decoded value', [{ key: 'on', value: true }]],
  ['a key that needs quoting', [{ key: 'a"b\\c', raw: Buffer.from('1') }]],
  ['one null', [{ key: 'n', raw: Buffer.from('null') }]],
  [
    'several samples',
    [
      { key: 'a', raw: Buffer.from('1') },
      { key: 'b', value: 'x' },
    ],
  ],
  [
    'a repeated key: the last one wins',
    [
      { key: 'a', raw: Buffer.from('1') },
      { key: 'a', raw: Buffer.from('2') },
    ],
  ],
  [
    'integer-like keys: JSON.stringify order',
    [
      { key: '2', raw: Buffer.from('1') },
      { key: '1', raw: Buffer.from('2') },
    ],
  ],
];

for (const [name, samples] of cases) {
  test(`samples → event body: ${name}`, () => {
    const msg = msgOf(samples);
    assert.equal(convertKind(msg, 'event'), undefined);
    assert.equal(msg.kind, 'event');
    assert.equal(msg.body?.toString('utf8'), expected(samples));
    assert.equal(msg.samples, undefined);
  });
}

test('numbers that parsing would rewrite are written as they came, both ways (table)', () => {
  const toBody: Array<[Sample[], string]> = [
    [[{ key: 't', raw: Buffer.from('1.50') }], '{"t":1.50}'],
    [[{ key: 'n', raw: Buffer.from('12345678901234567890') }], '{"n":12345678901234567890}'],
    [
      [
        { key: 'a', raw: Buffer.from('-0') },
        { key: 'b', raw: Buffer.from('{"x": [1E2, 2]}') },
      ],
      '{"a":-0,"b":{"x":[1E2,2]}}',
    ],
  ];
  for (const [samples, body] of toBody) {
    const msg = msgOf(samples);
    assert.equal(convertKind(msg, 'event'), undefined);
    assert.equal(msg.body?.toString('utf8'), body);
    // And back: the samples' values write the same numbers.
    assert.equal(convertKind(msg, 'samples'), undefined);
    assert.equal(
      msg.samples?.map((s) => `${s.key}=${jsonText(s.value)}`).join(' '),
      samples.map((s) => `${s.key}=${jsonText(sampleValue(s))}`).join(' '),
    );
  }
});

test('event body → samples: one sample per key, and no body left', () => {
  const msg: Canonical = { kind: 'event', body: Buffer.from('{"a":1,"b":"x"}'), qos: 0, retain: false };
  assert.equal(convertKind(msg, 'samples'), undefined);
  assert.deepEqual(msg.samples, [
    { key: 'a', value: 1 },
    { key: 'b', value: 'x' },
  ]);
  assert.equal(msg.body, undefined);
});

test('event body → samples: a body that is not a JSON object is refused', () => {
  for (const body of ['[1]', '3', 'nope']) {
    const msg: Canonical = { kind: 'event', body: Buffer.from(body), qos: 0, retain: false };
    assert.equal(convertKind(msg, 'samples'), 'bad_payload', body);
  }
});
