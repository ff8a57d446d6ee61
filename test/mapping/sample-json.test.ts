/**
 * sampleJson gives exactly the JSON text jsonText(sampleValue(s)) gives (JSON.stringify, with
 * numbers as they came), whether it uses the raw bytes as they are (canonical JSON: plain
 * strings, numbers, literals) or parses them: listed edge cases, then every byte string of up
 * to 4 bytes over an alphabet of JSON-significant bytes (a deterministic exhaustive check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonText, parseJsonExact } from '../../src/mapping/json-literal.js';
import { sampleBytes, sampleJson, sampleSize, sampleValue } from '../../src/mapping/model.js';

const slow = (raw: Buffer): string | undefined => jsonText(sampleValue({ key: 'k', raw }));

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

test('numbers are written as they came, whatever JSON.stringify would make of them (table)', () => {
  const cases: Array<[string, string]> = [
    ['12345678901234567890', '12345678901234567890'],
    ['23.10', '23.10'],
    ['-0', '-0'],
    ['1E2', '1E2'],
    ['-2.50e-7', '-2.50e-7'],
    ['21.5', '21.5'],
    ['[1.0, 2]', '[1.0,2]'],
    ['"23.10"', '"23.10"'],
    ['007', '"007"'],
  ];
  for (const [raw, want] of cases) {
    assert.equal(sampleJson({ key: 'k', raw: Buffer.from(raw) }), want, raw);
    // Parsed first (a value taken from a list or object): the same text, as a raw payload too.
    const value = parseJsonExact(Buffer.from(raw.startsWith('0') ? JSON.stringify(raw) : raw));
    assert.equal(sampleJson({ key: 'k', value }), want, `${raw} parsed`);
    const bytes = typeof value === 'string' ? value : want;
    assert.equal(sampleBytes({ key: 'k', value }).toString(), bytes, `${raw} as a raw payload`);
    assert.equal(sampleSize({ key: 'k', value }), Buffer.byteLength(bytes), `${raw} size`);
  }
});

test('every string of up to 4 bytes over JSON-significant bytes', () => {
  const alphabet = Buffer.from('0159-"\\ture.xE+ \t', 'latin1');
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
