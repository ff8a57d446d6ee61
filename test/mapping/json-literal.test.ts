/**
 * json-literal.ts: numbers that JSON.parse → JSON.stringify would change come back exactly as
 * written; everything else is what JSON.parse and JSON.stringify give. Tables of documents and
 * of number literals, then the parser checked against JSON.parse on every string of up to 4
 * characters over JSON-significant characters (the same documents accepted, the same values).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  changesNumbers,
  JsonNumber,
  jsonText,
  numberOf,
  parseJsonExact,
  parseKeepingLiterals,
} from '../../src/mapping/json-literal.js';

/** The value with every JsonNumber replaced by its number: what JSON.parse gives. */
function plain(v: unknown): unknown {
  if (v instanceof JsonNumber) return Number(v.literal);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) {
      const x = plain((v as Record<string, unknown>)[k]);
      if (k === '__proto__') Object.defineProperty(o, k, { value: x, enumerable: true, writable: true });
      else o[k] = x;
    }
    return o;
  }
  return v;
}

// [payload, the JSON text written back]: literals kept, whitespace gone, the rest as JSON.stringify.
const DOCUMENTS: Array<[string, string]> = [
  ['12345678901234567890', '12345678901234567890'],
  ['-12345678901234567890', '-12345678901234567890'],
  ['23.10', '23.10'],
  ['-0', '-0'],
  ['-0.0', '-0.0'],
  ['1E2', '1E2'],
  ['1e-7', '1e-7'],
  ['1.5e300', '1.5e300'],
  ['1e400', '1e400'],
  ['0.1234567890123456789', '0.1234567890123456789'],
  ['9007199254740993', '9007199254740993'],
  [
    '{"big": 12345678901234567890, "t": 23.10, "n": -7, "s": "1.50"}',
    '{"big":12345678901234567890,"t":23.10,"n":-7,"s":"1.50"}',
  ],
  ['[1.0, [2.50, {"x": -0}], "e1", 3]', '[1.0,[2.50,{"x":-0}],"e1",3]'],
  ['{"a": {"b": 1}, "c": [1, 2], "d": 1.0}', '{"a":{"b":1},"c":[1,2],"d":1.0}'],
  ['{"__proto__": 1.0, "x": "\\u0041\\n"}', '{"__proto__":1.0,"x":"A\\n"}'],
  ['{"a": 1.0, "a": 2.50}', '{"a":2.50}'],
  ['{"2": 1.0, "1": 2}', '{"1":2,"2":1.0}'],
  // Numbers that come back unchanged stay plain numbers (the common case).
  ['21.5', '21.5'],
  ['1600000000123456', '1600000000123456'],
  ['1e+21', '1e+21'],
  ['{"temp": 21.5, "hum": 40, "on": true, "x": null}', '{"temp":21.5,"hum":40,"on":true,"x":null}'],
];

test('documents: numbers written back as they came, the rest as JSON.stringify writes it', () => {
  for (const [text, out] of DOCUMENTS) {
    const v = parseJsonExact(Buffer.from(text));
    assert.equal(jsonText(v), out, text);
    assert.deepEqual(plain(v), JSON.parse(text), `${text}: the values JSON.parse gives`);
    assert.equal(JSON.stringify(v), JSON.stringify(JSON.parse(text)), `${text}: JSON.stringify as before`);
  }
});

// Payloads JSON.parse refuses: refused the same way, whichever path reads them.
const INVALID = [
  '',
  ' ',
  '12345678901234567890x',
  '[1.0,]',
  '{"a":1.0,}',
  '{"a" 1.0}',
  '{a:1.0}',
  '01.0',
  '-',
  '1.',
  '.5',
  '+1.0',
  '1e',
  '1.0e+',
  '[1.0',
  '{"a":1.0',
  '"1.0',
  '"a\u0001b" 1.0',
  '["\\x"] 1.0',
  '[1.0] x',
  '\ufeff1.0',
  'NaN',
  '[Infinity, 1.0]',
  "['a', 1.0]",
  '[tru, 1.0]',
];

test('invalid JSON is refused as JSON.parse refuses it', () => {
  for (const text of INVALID) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse accepts ${text}`);
    assert.throws(() => parseJsonExact(Buffer.from(text)), SyntaxError, text);
    assert.throws(() => parseKeepingLiterals(text), SyntaxError, text);
  }
});

test('number literals: changed ones kept exactly, unchanged ones plain numbers, the scan agrees', () => {
  const ints = [
    '0',
    '7',
    '10',
    '123456789012345',
    '1234567890123456',
    '8999999999999999',
    '9999999999999999',
    '9007199254740993',
    '12345678901234567890',
  ];
  const fractions = ['', '.5', '.50', '.05', '.0000001', '.000001', '.1234567890123456789', '.0'];
  const exponents = ['', 'e5', 'E-7', 'e+21', 'e400', 'E0'];
  let n = 0;
  for (const sign of ['', '-'])
    for (const i of ints)
      for (const f of fractions)
        for (const e of exponents) {
          const lit = `${sign}${i}${f}${e}`;
          const changes = String(Number(lit)) !== lit;
          assert.equal(changesNumbers(Buffer.from(lit)), changes, `scan of ${lit}`);
          assert.equal(
            changesNumbers(Buffer.from(`{"k": [true, ${lit}]}`)),
            changes,
            `scan of ${lit} in an object`,
          );
          assert.equal(changesNumbers(Buffer.from(`"${lit}"`)), false, `${lit} in a string`);
          const v = parseJsonExact(Buffer.from(`[${lit}]`)) as unknown[];
          assert.equal(v[0] instanceof JsonNumber, changes, lit);
          assert.equal(numberOf(v[0]), Number(lit), lit);
          assert.equal(jsonText(v), `[${lit}]`, lit);
          n++;
        }
  assert.equal(n, 2 * ints.length * fractions.length * exponents.length);
});

test('a kept number still computes as a number; JSON.stringify alone writes it as before', () => {
  const v = parseJsonExact(Buffer.from('{"t": 1.7e15, "n": 12345678901234567890}')) as Record<
    string,
    unknown
  >;
  assert.ok(v.t instanceof JsonNumber);
  assert.equal(numberOf(v.t), 1.7e15);
  assert.equal(Number(v.t), 1.7e15);
  assert.equal((v.t as unknown as number) / 1000, 1.7e12);
  assert.equal(numberOf('1'), undefined, 'a string is no number');
  assert.equal(JSON.stringify(v), '{"t":1700000000000000,"n":12345678901234567000}');
  assert.deepEqual(Object.keys(v), ['t', 'n'], 'the mark is no key');
});

test('a document nested deeper than the parser can go is read by JSON.parse, as before', () => {
  const depth = 20_000;
  const text = `${'['.repeat(depth)}1.0${']'.repeat(depth)}`;
  assert.throws(() => parseKeepingLiterals(text), RangeError);
  let v = parseJsonExact(Buffer.from(text));
  for (let d = 0; d < depth; d++) {
    assert.ok(Array.isArray(v) && v.length === 1, `depth ${d}`);
    v = v[0];
  }
  assert.equal(v, 1);
});

/** JSON text without the spaces between tokens (none of the alphabet's escapes is rewritten). */
function minified(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString && c === '\\') {
      out += c + (text[++i] ?? '');
      continue;
    }
    if (c === '"') inString = !inString;
    if (inString || c !== ' ') out += c;
  }
  return out;
}

/** Checks every string up to `max` characters over `alphabet`; returns [checked, valid, with kept numbers]. */
function everyString(alphabet: readonly string[], max: number): [number, number, number] {
  let checked = 0;
  let valid = 0;
  let literals = 0;
  const walk = (prefix: string): void => {
    let want: unknown;
    let ok = true;
    try {
      want = JSON.parse(prefix);
    } catch {
      ok = false;
    }
    if (ok) {
      valid++;
      const got = parseKeepingLiterals(prefix);
      assert.deepEqual(plain(got), want, JSON.stringify(prefix));
      if (jsonText(got) !== JSON.stringify(want)) literals++;
      assert.equal(jsonText(parseJsonExact(Buffer.from(prefix))), minified(prefix), JSON.stringify(prefix));
    } else assert.throws(() => parseKeepingLiterals(prefix), SyntaxError, JSON.stringify(prefix));
    checked++;
    if (prefix.length < max) for (const c of alphabet) walk(prefix + c);
  };
  walk('');
  return [checked, valid, literals];
}

test('the parser accepts and reads every short string exactly as JSON.parse does', () => {
  const [checked, valid, literals] = everyString(
    ['0', '1', '-', '.', 'e', '+', '[', ']', '{', '}', '"', ':', ',', ' ', 'a', '\\'],
    4,
  );
  assert.ok(checked > 60_000);
  assert.ok(valid > 400, `${valid} valid documents`);
  assert.ok(literals > 20, `${literals} documents with kept numbers`);
});

test('the parser reads every number-like string of up to 5 characters as JSON.parse does', () => {
  const [checked, valid, literals] = everyString(['0', '5', '-', '.', 'E', '+', '[', ','], 5);
  assert.ok(checked > 35_000);
  assert.ok(valid > 200, `${valid} valid documents`);
  assert.ok(literals > 100, `${literals} documents with kept numbers`);
});
