/**
 * ByteList (src/codec/byte-list.ts) answers every call mqtt-packet's parser makes exactly as
 * bl's BufferList does (the buffer it replaces): seeded random appends and consumes, then
 * every read at offsets in range, at the edges and past them; and a parser fed random bytes
 * in random pieces reports the same packets and errors with either buffer.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import mqtt from 'mqtt-packet';
import { ByteList } from '../../src/codec/byte-list.js';
import { createParser } from '../../src/codec/lean-parser.js';
import { prng, recorder } from './kit.js';

const require = createRequire(import.meta.url);
const BufferList = require(
  require.resolve('bl/BufferList.js', { paths: [dirname(require.resolve('mqtt-packet'))] }),
) as new () => ByteList;

type Read = { value: unknown } | { threw: string };

function read(f: () => unknown): Read {
  try {
    const v = f();
    return { value: Buffer.isBuffer(v) ? [...v] : v };
  } catch (err) {
    return { threw: (err as Error).constructor.name };
  }
}

function bytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rand() < 0.7 ? 0x20 + Math.floor(rand() * 95) : Math.floor(rand() * 256);
  return b;
}

describe('ByteList', () => {
  it('reads, slices and consumes like BufferList after random appends and consumes', () => {
    const rand = prng(11);
    let checks = 0;
    let joined = 0;
    for (let round = 0; round < 300; round++) {
      const mine = new ByteList();
      const theirs = new BufferList();
      for (let step = 0; step < 12; step++) {
        const op = rand();
        if (op < 0.45) {
          const chunk = bytes(rand, Math.floor(rand() * 9));
          if (mine.length > 0 && chunk.length > 0) joined++;
          mine.append(chunk);
          theirs.append(chunk);
        } else if (op < 0.65) {
          const n = Math.floor(rand() * (mine.length + 3)) - 1;
          mine.consume(n);
          theirs.consume(n);
        }
        assert.equal(mine.length, theirs.length);
        const len = mine.length;
        const offsets = [-1, 0, 1, len - 4, len - 2, len - 1, len, len + 1, Math.floor(rand() * (len + 1))];
        for (const o of offsets) {
          for (const m of ['readUInt8', 'readUInt16BE', 'readUInt32BE'] as const) {
            if (o < 0) continue; // mqtt-packet reads at positions >= 0 only
            assert.deepEqual(
              read(() => mine[m](o)),
              read(() => theirs[m](o)),
              `${m}(${o}) of ${len}`,
            );
            checks++;
          }
          for (const e of [undefined, o + 1, o + 3, len, len + 2, -1, 0]) {
            assert.deepEqual(
              read(() => mine.slice(o, e)),
              read(() => theirs.slice(o, e)),
            );
            assert.deepEqual(
              read(() => mine.toString('utf8', o, e)),
              read(() => theirs.toString('utf8', o, e)),
            );
            checks += 2;
          }
        }
        assert.deepEqual(
          read(() => mine.slice()),
          read(() => theirs.slice()),
        );
      }
    }
    assert.ok(checks > 50_000, `${checks} checks`);
    assert.ok(joined > 100, `appends behind waiting bytes: ${joined}`);
  });

  it('slices are views of the appended bytes, not copies', () => {
    const frame = Buffer.from('0123456789');
    const list = new ByteList().append(frame);
    list.consume(2);
    const view = list.slice(1, 4);
    assert.equal(view.toString(), '345');
    frame[3] = 0x41;
    assert.equal(view.toString(), 'A45');
  });
});

describe('parsers on a ByteList', () => {
  it('random bytes in random pieces: the same packets and errors as mqtt-packet parsers', () => {
    const rand = prng(23);
    let seen = 0;
    for (let round = 0; round < 400; round++) {
      const v = [3, 4, 5][round % 3] as 3 | 4 | 5;
      // A valid packet type and a short length in the first bytes, so the parse gets past the
      // fixed header as often as not; the rest is noise.
      const body = bytes(rand, 2 + Math.floor(rand() * 40));
      body[0] = (1 + Math.floor(rand() * 14)) << 4;
      if (rand() < 0.5) body[1] = Math.min(body.length - 2, body[1]! & 0x3f);
      const lean = createParser({ protocolVersion: v });
      const own = mqtt.parser({ protocolVersion: v });
      const a = recorder(lean);
      const b = recorder(own);
      let off = 0;
      while (off < body.length) {
        const n = 1 + Math.floor(rand() * 8);
        const piece = body.subarray(off, off + n);
        const ra = read(() => lean.parse(piece));
        const rb = read(() => own.parse(piece));
        assert.deepEqual(ra, rb, `round ${round}`);
        off += n;
      }
      assert.deepEqual(a, b, `round ${round}`);
      seen += a.length;
    }
    assert.ok(seen > 100, `${seen} packets and errors`);
  });
});
