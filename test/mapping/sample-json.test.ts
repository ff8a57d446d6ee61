/**
 * sampleJson gives exactly the JSON text JSON.stringify(sampleValue(s)) gives, whether it uses
 * the raw bytes as they are (canonical JSON: plain strings, small integers, literals) or
 * parses them: listed edge cases, then every byte string of up to 4 bytes over an alphabet of
 * JSON-significant bytes (a deterministic exhaustive check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleJson, sampleValue } from '../../src/mapping/model.js';

const slow = (raw: Buffer): string | undefined => JSON.stringify(sampleValue({ key: 'k', raw }));

test('edge cases: the same text as parsing and serialising', () => {
  const cases = [
    '23',
    '-5',
    '0',
    '-0',
    '007',
    '1.50',
    '1e3',
    'true',
    'false',
    'null',
    'tru',
    'nul',
    '"abc"',
    '"a\\"b"',
    '"\\u0041"',
    '"a\tb"',
    ' 23',
    '23 ',
    '"abc',
    'abc',
    '[1,2]',
    '{"a":1}',
    '"',
    '""',
    '-',
    '123456789012345',
    '-123456789012345',
    '1234567890123456',
    '9007199254740993',
  ];
  for (const c of cases) {
    const raw = Buffer.from(c);
    assert.equal(sampleJson({ key: 'k', raw }), slow(raw), c);
  }
  assert.equal(sampleJson({ key: 'k', raw: Buffer.from('"é"') }), '"é"', 'non-ASCII: parsed');
  assert.equal(sampleJson({ key: 'k', value: 1.5, raw: Buffer.from('"x"') }), '1.5', 'a value wins over raw');
});

test('every string of up to 4 bytes over JSON-significant bytes', () => {
  const alphabet = Buffer.from('0159-"\\ture.x \t', 'latin1');
  const all = [...alphabet, 0xc3, 0xa9];
  let checked = 0;
  const walk = (prefix: number[]): void => {
    const raw = Buffer.from(prefix);
    assert.equal(sampleJson({ key: 'k', raw }), slow(raw), JSON.stringify(raw.toString('latin1')));
    checked++;
    if (prefix.length < 4) for (const b of all) walk([...prefix, b]);
  };
  walk([]);
  assert.ok(checked > 80_000);
});
