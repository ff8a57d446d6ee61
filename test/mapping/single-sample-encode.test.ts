/**
 * The hand-written encoders of one sample (value_list, key_value_list, and a samples → body
 * conversion), which use a device's raw bytes as they are when they already are JSON text,
 * give exactly the bytes JSON.stringify of the same item gives (numbers as they came, as
 * jsonText writes them): over raw values that are canonical JSON and that are not (parsed),
 * keys with non-ASCII characters and quotes, with and without a time stamp.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeCodec } from '../../src/mapping/codecs.js';
import { jsonText } from '../../src/mapping/json-literal.js';
import type { Canonical, Sample } from '../../src/mapping/model.js';
import { sampleValue } from '../../src/mapping/model.js';
import { convertKind } from '../../src/mapping/plan.js';

const RAWS = [
  '23',
  '-5',
  '"on"',
  '"a b/c"',
  'true',
  'null',
  '1.50',
  '"é"',
  '{"a":1}',
  'abc',
  '"@000x"',
  '12345678901234567890',
  '-0',
  '1E2',
  '[ 1.0, {"b": 2e-7} ]',
];
const KEYS = ['temperature', 'température', 'k"q', '温度'];
const NOW_US = 1_795_452_434_986_123;

/** The reference: the item's fields serialised one by one (JSON.stringify, the value by jsonText). */
function expected(withKey: boolean, s: Sample, ts: number | undefined): Buffer {
  const item: string[] = [];
  if (withKey) item.push(`"key":${JSON.stringify(s.key)}`);
  item.push(`"value":${jsonText(sampleValue({ ...s }))}`);
  if (ts !== undefined) item.push(`"timestamp":${JSON.stringify(Math.round(ts / 1000))}`);
  return Buffer.from(`[{${item.join(',')}}]`);
}

function canonical(): Canonical {
  return { kind: 'samples', qos: 0, retain: false } as Canonical;
}

test('value_list and key_value_list: one raw sample encodes as JSON.stringify would', () => {
  let cases = 0;
  for (const withKey of [false, true]) {
    for (const stamp of [false, true]) {
      const codec = makeCodec(
        { codec: withKey ? 'key_value_list' : 'value_list', time: 'timestamp', unit: 'ms', stamp },
        'value',
      );
      for (const key of KEYS)
        for (const r of RAWS)
          for (const ts of [undefined, 1_700_000_000_000_000]) {
            const s: Sample =
              ts === undefined ? { key, raw: Buffer.from(r) } : { key, raw: Buffer.from(r), ts };
            const got = codec.encode(canonical(), [s], {}, NOW_US);
            const want = expected(withKey, s, ts ?? (stamp ? NOW_US : undefined));
            assert.equal(got.toString('utf8'), want.toString('utf8'), `${key} ${r} ${ts} ${stamp}`);
            assert.ok(got.equals(want));
            cases++;
          }
    }
  }
  assert.equal(cases, 2 * 2 * KEYS.length * RAWS.length * 2);
});

test('samples → body: one raw sample becomes {"key": value} as JSON.stringify would', () => {
  for (const key of KEYS)
    for (const r of RAWS) {
      const msg = { ...canonical(), samples: [{ key, raw: Buffer.from(r) }] } as Canonical;
      assert.equal(convertKind(msg, 'resource'), undefined);
      const want = `{${JSON.stringify(key)}:${jsonText(sampleValue({ key, raw: Buffer.from(r) }))}}`;
      assert.equal(msg.body?.toString('utf8'), want, `${key} ${r}`);
    }
});

test('the output does not share memory with the payload it came from', () => {
  const codec = makeCodec({ codec: 'value_list' }, 'value');
  const raw = Buffer.from('"x"');
  const out = codec.encode(canonical(), [{ key: 'k', raw }], {}, NOW_US);
  assert.equal(out.toString(), '[{"value":"x"}]');
  raw[1] = 0x79;
  assert.equal(out.toString(), '[{"value":"x"}]', 'the output is a copy, not a view of the payload');
});
