/**
 * The byte layer on in-memory streams: Framer (whole packets out of any chunking, size limit
 * enforced from the header alone) and PacketChannel (parse, write, backpressure, close once).
 */
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import mqtt, { type Packet } from 'mqtt-packet';
import { PacketChannel } from '../../src/codec/channel.js';
import { FrameError, Framer } from '../../src/codec/framer.js';

/** Two connected in-memory stream ends. */
function streamPair(highWaterMark?: number): [Duplex, Duplex] {
  const ab = new PassThrough(highWaterMark ? { highWaterMark } : {});
  const ba = new PassThrough(highWaterMark ? { highWaterMark } : {});
  const opts = highWaterMark ? { highWaterMark } : {};
  const ends: [Duplex, Duplex] = [
    Duplex.from({ readable: ba, writable: ab, ...opts }),
    Duplex.from({ readable: ab, writable: ba, ...opts }),
  ];
  // Destroying one end aborts the other: that is expected here, not an error.
  for (const e of [...ends, ab, ba]) e.on('error', () => undefined);
  return ends;
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function samplePackets(n: number, rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const size = Math.floor(rand() * (i % 7 === 0 ? 40_000 : 300));
    const kind = i % 4;
    const p: Record<string, unknown> =
      kind === 0
        ? {
            cmd: 'publish',
            topic: `t/${i}`,
            payload: Buffer.alloc(size, i),
            qos: 1,
            messageId: i + 1,
            retain: false,
            dup: false,
          }
        : kind === 1
          ? { cmd: 'pingreq' }
          : kind === 2
            ? { cmd: 'puback', messageId: i + 1 }
            : { cmd: 'subscribe', messageId: i + 1, subscriptions: [{ topic: `s/${i}/#`, qos: 1 }] };
    out.push(mqtt.generate(p as unknown as Packet));
  }
  return out;
}

describe('Framer', () => {
  it('returns exactly the packets sent, whatever the chunking', () => {
    for (const seed of [1, 2, 3]) {
      const rand = rng(seed);
      const packets = samplePackets(60, rand);
      const all = Buffer.concat(packets);
      const frames: Buffer[] = [];
      const f = new Framer(1 << 20, { onFrame: (fr) => frames.push(Buffer.from(fr)) });
      for (let off = 0; off < all.length; ) {
        const step = rand() < 0.3 ? 1 : 1 + Math.floor(rand() * 5000);
        f.push(all.subarray(off, off + step));
        off += step;
      }
      assert.equal(frames.length, packets.length, `seed ${seed}`);
      for (const [i, fr] of frames.entries()) assert.ok(fr.equals(packets[i]!), `seed ${seed}, packet ${i}`);
    }
  });

  it('refuses an oversize packet from its header alone, before its body arrives', () => {
    const f = new Framer(1024, { onFrame: () => assert.fail('no frame expected') });
    // PUBLISH with remaining length 10 MiB: only the 5 header bytes are fed.
    const header = Buffer.from([0x30, 0x80, 0x80, 0x80, 0x05]);
    assert.throws(
      () => f.push(header),
      (e: unknown) => e instanceof FrameError && e.code === 'MDP_ERR_PACKET_TOO_LARGE',
    );
  });

  it('accepts a packet of exactly the limit and refuses one byte more', () => {
    const limit = 300;
    const exact = Buffer.concat([Buffer.from([0x30, 0xac, 0x02]), Buffer.alloc(limit)]);
    const frames: Buffer[] = [];
    new Framer(limit, { onFrame: (fr) => frames.push(fr) }).push(exact);
    assert.equal(frames.length, 1);
    assert.throws(() => new Framer(limit - 1, { onFrame: () => undefined }).push(exact), FrameError);
  });

  it('refuses a remaining length longer than 4 bytes', () => {
    const f = new Framer(1 << 28, { onFrame: () => undefined });
    assert.throws(
      () => f.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])),
      (e: unknown) => e instanceof FrameError && e.code === 'MDP_ERR_MALFORMED_LENGTH',
    );
  });
});

describe('PacketChannel', () => {
  const collectChannel = (stream: Duplex, maxPacketBytes = 1 << 20) => {
    const packets: Packet[] = [];
    const closes: string[] = [];
    let drains = 0;
    const ch = new PacketChannel(
      stream,
      {
        onPacket: (p) => packets.push(p),
        onClose: (reason) => closes.push(reason),
        onDrain: () => drains++,
      },
      { maxPacketBytes, protocolVersion: 4 },
    );
    return { ch, packets, closes, drains: () => drains };
  };
  const tick = () => new Promise((r) => setImmediate(r));

  it('keeps no part of a CONNECT after parsing it, and parses what follows by its version', async () => {
    const [near, far] = streamPair();
    const packets: Packet[] = [];
    const ch = new PacketChannel(
      near,
      { onPacket: (p) => packets.push(p), onClose: () => {}, onDrain: () => {} },
      { maxPacketBytes: 1 << 20, protocolVersion: 0 },
    );
    const v5 = { protocolVersion: 5 } as const;
    far.write(
      mqtt.generate(
        {
          cmd: 'connect',
          protocolVersion: 5,
          clientId: 'dev-secret-id',
          username: 'u',
          password: Buffer.from('pw-123'),
          keepalive: 30,
          clean: true,
        },
        v5,
      ),
    );
    far.write(
      mqtt.generate(
        {
          cmd: 'publish',
          topic: 't',
          payload: Buffer.from('x'),
          qos: 0,
          dup: false,
          retain: false,
          properties: { contentType: 'text/plain' },
        },
        v5,
      ),
    );
    for (let i = 0; i < 50 && packets.length < 2; i++) await tick();
    assert.equal(packets.length, 2);
    // The channel's parser settings are its version alone: not the CONNECT with its password.
    assert.deepEqual({ ...ch.parserSettings }, { protocolVersion: 5 });
    assert.equal(
      (packets[1] as { properties?: { contentType?: string } }).properties?.contentType,
      'text/plain',
    );
    far.destroy();

    // A bridge's CONNECT (protocol level with bit 7 set) keeps its bridge mode for what follows.
    const [near2, far2] = streamPair();
    const bridged = new PacketChannel(
      near2,
      { onPacket: (p) => packets.push(p), onClose: () => {}, onDrain: () => {} },
      { maxPacketBytes: 1 << 20, protocolVersion: 0 },
    );
    far2.write(
      mqtt.generate({
        cmd: 'connect',
        protocolVersion: 4,
        bridgeMode: true,
        clientId: 'b',
        keepalive: 30,
        clean: true,
      } as Packet),
    );
    for (let i = 0; i < 50 && packets.length < 3; i++) await tick();
    assert.deepEqual({ ...bridged.parserSettings }, { protocolVersion: 4, bridgeMode: true });
    far2.destroy();
  });

  it('parses packets split across writes, in order', async () => {
    const [near, far] = streamPair();
    const { packets, closes } = collectChannel(near);
    const bytes = Buffer.concat(samplePackets(20, rng(7)));
    for (let off = 0; off < bytes.length; off += 333) far.write(bytes.subarray(off, off + 333));
    for (let i = 0; i < 50 && packets.length < 20; i++) await tick();
    assert.equal(packets.length, 20);
    assert.deepEqual(
      packets.slice(0, 4).map((p) => p.cmd),
      ['publish', 'pingreq', 'puback', 'subscribe'],
    );
    assert.deepEqual(closes, []);
    far.destroy();
  });

  it('closes once with malformed_packet on garbage, and packet_too_large over the limit', async () => {
    const [a, aFar] = streamPair();
    const bad = collectChannel(a);
    aFar.write(Buffer.from([0x00, 0x02, 0xde, 0xad, 0x00, 0x00]));
    for (let i = 0; i < 20 && bad.closes.length === 0; i++) await tick();
    assert.deepEqual(bad.closes, ['malformed_packet']);
    assert.equal(bad.ch.isClosed, true);

    const [b, bFar] = streamPair();
    const big = collectChannel(b, 100);
    bFar.write(
      mqtt.generate({
        cmd: 'publish',
        topic: 't',
        payload: Buffer.alloc(200),
        qos: 0,
        retain: false,
        dup: false,
      }),
    );
    for (let i = 0; i < 20 && big.closes.length === 0; i++) await tick();
    assert.deepEqual(big.closes, ['packet_too_large']);
    assert.equal(big.packets.length, 0);
  });

  it('reports backpressure when the peer does not read, and drain when it does', async () => {
    const [near, far] = streamPair(1024);
    const { ch, drains } = collectChannel(near);
    far.pause();
    let ok = true;
    for (let i = 0; i < 100 && ok; i++) {
      ok = ch.write({
        cmd: 'publish',
        topic: 'bp',
        payload: Buffer.alloc(512),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    assert.equal(ok, false, 'write() returned false before 100 packets of 512 bytes');
    assert.equal(ch.blocked, true);
    far.resume();
    far.on('data', () => undefined);
    for (let i = 0; i < 200 && drains() === 0; i++) await tick();
    assert.ok(drains() >= 1, 'onDrain called');
    assert.equal(ch.blocked, false);
  });

  it('end() delivers what was written before closing', async () => {
    const [near, far] = streamPair();
    const { ch } = collectChannel(near);
    const got: Buffer[] = [];
    far.on('data', (b: Buffer) => got.push(b));
    const ended = new Promise<void>((r) => far.once('end', () => r()));
    ch.write({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    ch.write({ cmd: 'pingresp' });
    ch.end();
    await ended;
    assert.deepEqual(Buffer.concat(got), Buffer.from([0x20, 0x02, 0x00, 0x00, 0xd0, 0x00]));
  });
});
