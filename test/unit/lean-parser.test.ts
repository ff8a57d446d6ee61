/**
 * Parsers with a plain BufferList (src/codec/lean-parser.ts) read exactly what mqtt-packet's
 * own parsers read: every sample packet of every protocol version, whole, one byte per chunk
 * and all in one chunk, and seeded mutated bytes (same packets, same errors), including the
 * parse after an error (mqtt-packet resets its state then).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt-packet';
import { createParser, LIST_METHODS, leanParsers } from '../../src/codec/lean-parser.js';
import { type ParserEvent, prng, recorder } from './kit.js';
import { samples, type Version } from './packets.js';

const VERSIONS: Version[] = [3, 4, 5];

/** Feeds the same chunks to a lean parser and to mqtt-packet's own; returns both event lists. */
function both(v: Version, chunks: Buffer[]): { lean: ParserEvent[]; plain: ParserEvent[]; list: object } {
  const lp = createParser({ protocolVersion: v });
  const pp = mqtt.parser({ protocolVersion: v });
  const lean = recorder(lp);
  const plain = recorder(pp);
  for (const c of chunks) {
    lp.parse(c);
    pp.parse(c);
  }
  return { lean, plain, list: (lp as unknown as { _list: object })._list };
}

function isPlainList(list: object): boolean {
  const l = list as Record<string, unknown>;
  return (
    LIST_METHODS.every((m) => typeof l[m] === 'function') &&
    typeof l.pipe !== 'function' &&
    l._readableState === undefined
  );
}

describe('lean mqtt-packet parsers', () => {
  it('are in use, with a plain BufferList (not a stream) as their buffer', () => {
    assert.equal(leanParsers, true);
    const p = createParser({ protocolVersion: 4 }) as unknown as { _list: object; packet: object };
    assert.ok(isPlainList(p._list));
    const own = mqtt.parser({ protocolVersion: 4 }) as unknown as { _list: object; packet: object };
    assert.equal(typeof (own._list as Record<string, unknown>).pipe, 'function');
    assert.deepEqual(Object.keys(p).sort(), Object.keys(own).sort());
    assert.deepEqual({ ...p.packet }, { ...own.packet });
  });

  for (const v of VERSIONS) {
    it(`protocol version ${v}: every sample parses as with mqtt-packet's parser (whole, bytewise, batched)`, () => {
      const frames = samples(v).map((s) => mqtt.generate(s.packet, { protocolVersion: v }));
      assert.ok(frames.length > 10);
      for (const f of frames) {
        const whole = both(v, [f]);
        assert.equal(whole.lean.length, 1);
        assert.deepEqual(whole.lean, whole.plain);
        const bytewise = both(
          v,
          [...f].map((b) => Buffer.from([b])),
        );
        assert.deepEqual(bytewise.lean, whole.plain);
        assert.equal((bytewise.list as { length: number }).length, 0);
      }
      const batched = both(v, [Buffer.concat(frames)]);
      assert.equal(batched.lean.length, frames.length);
      assert.deepEqual(batched.lean, batched.plain);
    });
  }

  it('mutated bytes: the same packets and errors as mqtt-packet, and a plain list after each error', () => {
    const rand = prng(7);
    let errors = 0;
    for (let round = 0; round < 600; round++) {
      const v = VERSIONS[round % 3] as Version;
      const all = samples(v);
      const s = all[Math.floor(rand() * all.length)] as (typeof all)[number];
      const f = Buffer.from(mqtt.generate(s.packet, { protocolVersion: v }));
      const flips = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < flips; i++) f[Math.floor(rand() * f.length)] = Math.floor(rand() * 256);
      // A valid packet after the mutated one: read again once the parser reset after an error.
      const next = mqtt.generate({ cmd: 'pingreq' }, { protocolVersion: v });
      const r = both(v, [f, next]);
      assert.deepEqual(r.lean, r.plain, `round ${round}`);
      if (r.lean.some((e) => 'error' in e)) errors++;
      assert.ok(isPlainList(r.list));
    }
    assert.ok(errors > 50, `mutations produced ${errors} errors`);
  });
});
