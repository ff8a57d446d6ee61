/**
 * Shared pieces of the unit tests: a PacketChannel on an in-memory stream pair (the test
 * holds the far end), a seeded PRNG, and a bounded wait.
 */
import type { Duplex } from 'node:stream';
import type { Packet, Parser } from 'mqtt-packet';
import { type ChannelOptions, PacketChannel } from '../../src/codec/channel.js';
import { streamPair } from '../../src/listeners/native-ws.js';

export interface ChannelHarness {
  channel: PacketChannel;
  /** The far end: bytes written here are read by the channel. */
  peer: Duplex;
  packets: Packet[];
  /** Size in bytes of each received packet, as reported by the channel. */
  sizes: number[];
  closes: Array<{ reason: string; error?: Error }>;
  /** Number of 'data' chunks the channel's stream delivered. */
  chunksIn: number;
  /** Everything the channel wrote, as seen by the far end. */
  received(): Buffer;
  /** Writes bytes into the channel, each chunk in its own event-loop turn. */
  feed(...chunks: Buffer[]): Promise<void>;
}

export function channelHarness(
  opts: Partial<ChannelOptions> = {},
  onPacket?: (h: ChannelHarness, p: Packet) => void,
): ChannelHarness {
  const [inner, peer] = streamPair();
  const out: Buffer[] = [];
  peer.on('data', (b: Buffer) => out.push(b));
  peer.on('error', () => undefined);
  const h: ChannelHarness = {
    peer,
    packets: [],
    sizes: [],
    closes: [],
    chunksIn: 0,
    received: () => Buffer.concat(out),
    async feed(...chunks) {
      for (const c of chunks) {
        if (peer.destroyed) return;
        peer.write(c);
        await turn();
      }
      await turn();
    },
    channel: undefined as unknown as PacketChannel,
  };
  inner.on('data', () => {
    h.chunksIn++;
  });
  h.channel = new PacketChannel(
    inner,
    {
      onPacket: (p, bytes) => {
        h.packets.push(p);
        h.sizes.push(bytes);
        onPacket?.(h, p);
      },
      onClose: (reason, error) => h.closes.push(error ? { reason, error } : { reason }),
      onDrain: () => undefined,
    },
    { maxPacketBytes: 268_435_455, protocolVersion: 0, ...opts },
  );
  return h;
}

/** One event-loop turn (lets stream events and nextTick uncorks run). */
export function turn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Waits until `ok()` or throws after `timeoutMs`. */
export async function until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** mulberry32: a small seeded PRNG, so every fuzz run is reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What an mqtt-packet parser reported: a packet (copied) or an error message. */
export type ParserEvent = { packet: Packet } | { error: string };

/** Records every packet and error a parser emits, in order. */
export function recorder(p: Parser): ParserEvent[] {
  const events: ParserEvent[] = [];
  p.on('packet', (packet: Packet) => events.push({ packet: { ...packet } as Packet }));
  p.on('error', (e: Error) => events.push({ error: e.message }));
  return events;
}
