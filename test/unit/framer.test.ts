/**
 * The Framer: whole MQTT packets out of arbitrary chunks, the size limit enforced on the
 * fixed header alone (before any payload is buffered), malformed remaining lengths refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt-packet';
import { FrameError, Framer } from '../../src/codec/framer.js';
import { channelHarness } from './kit.js';

/** MQTT variable byte integer. */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** A QoS 0 PUBLISH on topic "t" whose remaining length is exactly `remaining` (≥ 3). */
function publishOfRemaining(remaining: number): Buffer {
  const body = Buffer.alloc(remaining);
  body.writeUInt16BE(1, 0);
  body.write('t', 2);
  body.fill(0x61, 3);
  return Buffer.concat([Buffer.from([0x30]), varint(remaining), body]);
}

function framer(limit: number): { f: Framer; frames: Buffer[] } {
  const frames: Buffer[] = [];
  return { f: new Framer(limit, { onFrame: (b) => frames.push(Buffer.from(b)) }), frames };
}

function frameError(code: FrameError['code']) {
  return (err: unknown) => err instanceof FrameError && err.code === code;
}

describe('Framer: size limit', () => {
  for (const limit of [3, 127, 128, 16_383, 16_384, 2_097_152]) {
    it(`remaining length exactly ${limit} passes`, () => {
      const { f, frames } = framer(limit);
      const bytes = publishOfRemaining(limit);
      f.push(bytes);
      assert.equal(frames.length, 1);
      assert.ok(frames[0]!.equals(bytes));
    });

    it(`remaining length ${limit + 1} throws on the fixed header alone`, () => {
      const { f, frames } = framer(limit);
      const header = Buffer.concat([Buffer.from([0x30]), varint(limit + 1)]);
      assert.throws(() => f.push(header), frameError('MDP_ERR_PACKET_TOO_LARGE'));
      assert.equal(frames.length, 0);
    });
  }

  it('the oversize header is detected when its length bytes arrive one per chunk', () => {
    const { f, frames } = framer(1000);
    const header = Buffer.concat([Buffer.from([0x30]), varint(1_000_000)]);
    assert.equal(header.length, 4);
    for (let i = 0; i < header.length - 1; i++) f.push(header.subarray(i, i + 1));
    assert.throws(() => f.push(header.subarray(header.length - 1)), frameError('MDP_ERR_PACKET_TOO_LARGE'));
    assert.equal(frames.length, 0);
  });

  it('an oversize packet after valid ones: the valid ones are framed, then it throws', () => {
    const { f, frames } = framer(100);
    const ok = publishOfRemaining(100);
    const ping = Buffer.from([0xc0, 0x00]);
    assert.throws(
      () => f.push(Buffer.concat([ok, ping, Buffer.from([0x30]), varint(101)])),
      frameError('MDP_ERR_PACKET_TOO_LARGE'),
    );
    assert.equal(frames.length, 2);
    assert.ok(frames[0]!.equals(ok));
    assert.ok(frames[1]!.equals(ping));
  });

  it('the error message says the size and the limit, and nothing of the payload', () => {
    const { f } = framer(10);
    try {
      f.push(Buffer.concat([Buffer.from([0x30]), varint(11), Buffer.from('secret-token')]));
      assert.fail('expected a FrameError');
    } catch (err) {
      assert.ok(err instanceof FrameError);
      assert.match(err.message, /11 bytes exceeds the limit of 10 bytes/);
      assert.doesNotMatch(err.message, /secret/);
    }
  });
});

describe('Framer: malformed remaining length', () => {
  it('five length bytes (four with the continuation bit) throw', () => {
    const { f, frames } = framer(268_435_455);
    assert.throws(
      () => f.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])),
      frameError('MDP_ERR_MALFORMED_LENGTH'),
    );
    assert.equal(frames.length, 0);
  });

  it('the fourth continuation byte is enough to know, even before a fifth arrives', () => {
    const { f } = framer(268_435_455);
    assert.throws(
      () => f.push(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80])),
      frameError('MDP_ERR_MALFORMED_LENGTH'),
    );
  });

  it('the malformed length is detected when it arrives one byte per chunk', () => {
    const { f } = framer(268_435_455);
    for (const b of [0x30, 0x80, 0x80, 0x80]) f.push(Buffer.from([b]));
    assert.throws(() => f.push(Buffer.from([0x80])), frameError('MDP_ERR_MALFORMED_LENGTH'));
  });

  it('the largest 4-byte length (268,435,455) is valid: the framer waits for the body', () => {
    const { f, frames } = framer(268_435_455);
    f.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01]));
    assert.equal(frames.length, 0);
  });
});

describe('Framer: split headers and chunk boundaries', () => {
  const packets = [
    mqtt.generate({ cmd: 'pingreq' }),
    mqtt.generate({
      cmd: 'publish',
      topic: 'a/b',
      payload: Buffer.alloc(300, 1),
      qos: 1,
      messageId: 5,
      retain: false,
      dup: false,
    }),
    mqtt.generate({ cmd: 'puback', messageId: 5 }),
    mqtt.generate({
      cmd: 'publish',
      topic: 'c',
      payload: Buffer.alloc(20_000, 2),
      qos: 0,
      retain: false,
      dup: false,
    }),
    mqtt.generate({ cmd: 'disconnect' }),
  ];
  const stream = Buffer.concat(packets);

  it('a 2-byte header split between its type byte and its length', () => {
    const { f, frames } = framer(1000);
    f.push(Buffer.from([0xc0]));
    assert.equal(frames.length, 0);
    f.push(Buffer.from([0x00]));
    assert.equal(frames.length, 1);
    assert.ok(frames[0]!.equals(Buffer.from([0xc0, 0x00])));
  });

  it('a 3-byte remaining length split inside the length, then the body in pieces', () => {
    const { f, frames } = framer(100_000);
    const p = packets[3]!;
    assert.equal(p[1]! & 0x80, 0x80);
    f.push(p.subarray(0, 2));
    f.push(p.subarray(2, 3));
    f.push(p.subarray(3, 10));
    f.push(p.subarray(10, 15_000));
    assert.equal(frames.length, 0);
    f.push(p.subarray(15_000));
    assert.equal(frames.length, 1);
    assert.ok(frames[0]!.equals(p));
  });

  it('every chunk size from 1 to 64 bytes yields the same frames', () => {
    for (let size = 1; size <= 64; size++) {
      const { f, frames } = framer(100_000);
      for (let off = 0; off < stream.length; off += size) f.push(stream.subarray(off, off + size));
      assert.equal(frames.length, packets.length, `chunk size ${size}`);
      for (const [i, fr] of frames.entries())
        assert.ok(fr.equals(packets[i]!), `chunk size ${size}, frame ${i}`);
    }
  });

  it('all packets in one chunk, and a chunk ending in the middle of the next header', () => {
    const { f, frames } = framer(100_000);
    const cut = packets[0]!.length + packets[1]!.length + 1;
    f.push(stream.subarray(0, cut));
    assert.equal(frames.length, 2);
    f.push(stream.subarray(cut));
    assert.equal(frames.length, packets.length);
    assert.ok(Buffer.concat(frames).equals(stream));
  });
});

describe('PacketChannel enforces the framer limit', () => {
  it('closes with packet_too_large on the header alone and parses nothing', async () => {
    const h = channelHarness({ maxPacketBytes: 1024, protocolVersion: 4 });
    let peerClosed = false;
    h.peer.on('close', () => {
      peerClosed = true;
    });
    await h.feed(Buffer.concat([Buffer.from([0x30]), varint(1025)]));
    assert.equal(h.packets.length, 0);
    assert.equal(h.closes.length, 1);
    assert.equal(h.closes[0]!.reason, 'packet_too_large');
    assert.equal(h.channel.isClosed, true);
    assert.equal(peerClosed, true, 'the stream is closed, the peer sees it');
  });

  it('a packet at the limit is delivered', async () => {
    const h = channelHarness({ maxPacketBytes: 1024, protocolVersion: 4 });
    await h.feed(publishOfRemaining(1024));
    assert.deepEqual(h.closes, []);
    assert.equal(h.packets.length, 1);
    assert.equal(h.sizes[0], 1027);
    h.channel.destroy();
  });

  it('a malformed length closes with malformed_packet', async () => {
    const h = channelHarness({ protocolVersion: 4 });
    await h.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    assert.equal(h.closes[0]?.reason, 'malformed_packet');
    assert.equal(h.packets.length, 0);
  });

  it('bytes after a close are ignored: one close, no packets', async () => {
    const h = channelHarness({ maxPacketBytes: 10, protocolVersion: 4 });
    await h.feed(Buffer.from([0x30, 0x7f]), Buffer.from([0xc0, 0x00]));
    assert.equal(h.closes.length, 1);
    assert.equal(h.packets.length, 0);
  });
});
