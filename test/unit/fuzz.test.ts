/**
 * Fuzzing the read path, bounded and reproducible (seeded PRNG): random bytes and mutated
 * valid packets fed to a PacketChannel, to a Session, and to a running proxy. Nothing may
 * throw out of a stream handler or crash the process; each input either yields packets or
 * closes its connection with a reason, and a well-behaved client keeps being served.
 */
import assert from 'node:assert/strict';
import { type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt, { type Packet } from 'mqtt-packet';
import { passThroughRoute } from '../../src/routes/passthrough.js';
import {
  closeClient,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { channelHarness, prng, turn, until } from './kit.js';
import { samples, type Version } from './packets.js';
import { online, startSession, testRoute } from './session-kit.js';

const CHANNEL_REASONS = new Set([
  'malformed_packet',
  'malformed_topic',
  'unsupported_protocol_version',
  'packet_too_large',
  'peer_closed',
]);

type Rand = () => number;
const int = (r: Rand, n: number): number => Math.floor(r() * n);

function randomBytes(r: Rand, max: number): Buffer {
  const b = Buffer.alloc(1 + int(r, max));
  for (let i = 0; i < b.length; i++) b[i] = int(r, 256);
  return b;
}

/** Splits `b` into 1..4 chunks at random offsets. */
function chunks(r: Rand, b: Buffer): Buffer[] {
  const n = 1 + int(r, 4);
  const cuts = Array.from({ length: n - 1 }, () => int(r, b.length)).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, b.length]) {
    if (c > from) out.push(b.subarray(from, c));
    from = Math.max(from, c);
  }
  return out.length ? out : [b];
}

/** A valid packet of version v with 1-3 flipped bits, a truncation, or a spliced byte run. */
function mutate(r: Rand, v: Version): Buffer {
  const all = samples(v).filter((s) => s.packet.cmd !== 'publish' || s.packet.payload.length < 1000);
  const base = Buffer.from(mqtt.generate(all[int(r, all.length)]!.packet, { protocolVersion: v }));
  switch (int(r, 3)) {
    case 0: {
      for (let k = 1 + int(r, 3); k > 0; k--) base[int(r, base.length)]! ^= 1 << int(r, 8);
      return base;
    }
    case 1:
      return base.subarray(0, int(r, base.length));
    default: {
      const at = int(r, base.length);
      return Buffer.concat([base.subarray(0, at), randomBytes(r, 8), base.subarray(at)]);
    }
  }
}

interface Verdict {
  packets: number;
  reason?: string;
}

/** Feeds `input` to a fresh channel (echoing what it parses when `echo`), then ends the stream. */
async function throughChannel(
  input: Buffer[],
  version: Version | 0,
  echo: boolean,
  seed: number,
): Promise<Verdict> {
  let afterClose = 0;
  const h = channelHarness({ protocolVersion: version, maxPacketBytes: 300 }, (hh, p: Packet) => {
    if (hh.channel.isClosed) afterClose++;
    if (echo) hh.channel.write(p);
  });
  await h.feed(...input);
  if (!h.peer.destroyed) h.peer.end();
  await until(() => h.closes.length > 0, 2000, `seed ${seed}: the channel closes after end`);
  await turn();
  assert.equal(h.closes.length, 1, `seed ${seed}: closed exactly once`);
  const reason = h.closes[0]!.reason;
  const allowed = echo ? [...CHANNEL_REASONS, 'generate_failed'] : [...CHANNEL_REASONS];
  assert.ok(
    allowed.includes(reason),
    `seed ${seed}: close reason ${reason} (${h.closes[0]!.error?.message})`,
  );
  assert.equal(afterClose, 0, `seed ${seed}: no packet after close`);
  const total = input.reduce((n, b) => n + b.length, 0);
  assert.ok(h.sizes.reduce((n, s) => n + s, 0) <= total, `seed ${seed}: never more bytes framed than fed`);
  return { packets: h.packets.length, reason };
}

describe('fuzz: PacketChannel', () => {
  it('2,000 random inputs of up to 512 bytes: no throw, one close with a reason each', async () => {
    const reasons = new Map<string, number>();
    let parsed = 0;
    for (let seed = 1; seed <= 2000; seed++) {
      const r = prng(seed);
      const version = ([0, 3, 4, 5] as const)[seed % 4]!;
      const body = randomBytes(r, 512);
      // Half the cases start with a plausible fixed header byte, to get past the first check.
      if (seed % 2 === 0) body[0] = (1 + int(r, 15)) << 4;
      const v = await throughChannel(chunks(r, body), version, seed % 3 === 0, seed);
      parsed += v.packets;
      reasons.set(v.reason!, (reasons.get(v.reason!) ?? 0) + 1);
    }
    // The corpus must exercise every path, or the fuzzer proves little.
    assert.ok((reasons.get('malformed_packet') ?? 0) > 100, JSON.stringify([...reasons]));
    assert.ok((reasons.get('packet_too_large') ?? 0) > 100, JSON.stringify([...reasons]));
    assert.ok((reasons.get('peer_closed') ?? 0) > 10, JSON.stringify([...reasons]));
    assert.ok(parsed > 0, 'some random inputs parse as packets');
  });

  it('1,500 mutated valid packets (bit flips, truncations, splices), all versions', async () => {
    const reasons = new Map<string, number>();
    let parsed = 0;
    for (let seed = 10_001; seed <= 11_500; seed++) {
      const r = prng(seed);
      const v = ([3, 4, 5] as const)[seed % 3]!;
      const input = Buffer.concat([mutate(r, v), mutate(r, v)]);
      const res = await throughChannel(chunks(r, input), v, seed % 2 === 0, seed);
      parsed += res.packets;
      reasons.set(res.reason!, (reasons.get(res.reason!) ?? 0) + 1);
    }
    assert.ok(parsed > 300, `mutations still parse often (${parsed})`);
    assert.ok((reasons.get('malformed_packet') ?? 0) > 100, JSON.stringify([...reasons]));
  });
});

describe('fuzz: Session', () => {
  it('300 connections: a valid CONNECT then random or mutated bytes; each closes once with a reason, never internal_error', async () => {
    const reasons = new Map<string, number>();
    for (let seed = 20_001; seed <= 20_300; seed++) {
      const r = prng(seed);
      const v = ([3, 4, 5] as const)[seed % 3]!;
      const c = startSession(testRoute(), v, { maxPacketBytes: 300 });
      await online(c, { protocolVersion: v });
      const junk = seed % 2 ? randomBytes(r, 256) : mutate(r, v);
      for (const chunk of chunks(r, junk)) c.write(chunk);
      await turn();
      await turn();
      if (!c.isClosed()) {
        // Still open: the junk was valid packets or an incomplete frame. End it; the session must close.
        c.end();
      }
      await until(() => c.ctx.sessions.size === 0, 2000, `seed ${seed}: session closed`);
      const rs = await c.reasons();
      assert.equal(rs.length, 1, `seed ${seed}: one close reason, got ${rs}`);
      assert.notEqual(rs[0], 'internal_error', `seed ${seed}`);
      reasons.set(rs[0]!, (reasons.get(rs[0]!) ?? 0) + 1);
    }
    assert.ok(reasons.size >= 3, `varied outcomes: ${JSON.stringify([...reasons])}`);
  });
});

describe('fuzz: a running proxy under garbage', () => {
  let proxy: TestProxy;
  let client: MqttClient;
  const sockets: Socket[] = [];

  before(async () => {
    proxy = await startTestProxy({ limits: { maxPacketBytes: 4096 } }, { route: passThroughRoute() });
    client = await connectClient(proxy.url, { clientId: 'fuzz-bystander', keepalive: 0 });
    await subscribe(client, 'fuzz/bystander', { qos: 1 });
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await closeClient(client);
    await proxy.close(200);
  });

  const roundTrip = async (tag: string): Promise<void> => {
    const got = nextMessage(client, 'fuzz/bystander');
    await publish(client, 'fuzz/bystander', tag, { qos: 1 });
    assert.equal((await got).payload.toString(), tag);
  };

  it('50 garbage connections; the well-behaved MQTT.js client is served before, during and after', async () => {
    const port = Number(new URL(proxy.url).port);
    const r = prng(30_001);
    await roundTrip('before');
    for (let i = 0; i < 50; i++) {
      const s = tcpConnect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      sockets.push(s);
      await new Promise<void>((res) => s.once('connect', () => res()));
      const v = ([3, 4, 5] as const)[i % 3]!;
      const hello = mqtt.generate(
        {
          cmd: 'connect',
          protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
          protocolVersion: v,
          clientId: `junk-${i}`,
          clean: true,
          keepalive: 0,
        },
        { protocolVersion: v },
      );
      switch (i % 5) {
        case 0: // garbage instead of CONNECT
          s.write(randomBytes(r, 512));
          break;
        case 1: // a valid CONNECT, then garbage
          s.write(Buffer.concat([hello, randomBytes(r, 512)]));
          break;
        case 2: // an oversize header
          s.write(Buffer.from([0x30, 0xff, 0xff, 0x7f]));
          break;
        case 3: // a mutated packet after CONNECT
          s.write(Buffer.concat([hello, mutate(r, v), mutate(r, v)]));
          break;
        default: // half a packet, then silence (closed at the end)
          s.write(hello.subarray(0, Math.max(1, hello.length - 3)));
      }
      if (i % 10 === 9) await roundTrip(`during-${i}`);
    }
    await roundTrip('after');
    assert.ok(client.connected);
    for (const s of sockets) s.destroy();
    await until(() => proxy.connectionCount() === 1, 5000, 'only the bystander left');
    const closes = (await proxy.metrics.closesTotal.get()).values.filter((v) => v.value > 0);
    assert.ok(
      closes.every((v) => v.labels.reason !== 'internal_error'),
      JSON.stringify(closes.map((v) => [v.labels.reason, v.value])),
    );
    assert.ok(
      closes.reduce((n, v) => n + v.value, 0) >= 40,
      'the garbage connections were closed and counted',
    );
    await roundTrip('end');
  });
});
