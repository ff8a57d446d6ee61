/**
 * When a channel's writes reach the socket. A device's connection writes at the end of each
 * callback (nextTick): its packets come from one read at a time. A shared connection (a
 * gateway link carrying many devices) holds them to the end of the event-loop turn
 * (setImmediate), so the packets of every device read in that turn leave in one write.
 * Two immediates stand for two socket reads of one turn: Node drains the nextTick queue
 * between them, as it does between I/O callbacks.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { PacketChannel } from '../../src/codec/channel.js';
import { turn } from './kit.js';

/** A stream that records how many packets each write to it carried. */
class Recorder extends Duplex {
  readonly writes: number[] = [];
  override _read(): void {}
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.writes.push(1);
    cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.writes.push(chunks.length);
    cb();
  }
}

const publish = (n: number): Packet => ({
  cmd: 'publish',
  topic: `/devices/d${n}/events`,
  payload: Buffer.from(`{"t":${n}}`),
  qos: 0,
  retain: false,
  dup: false,
});

async function writesOf(shared: boolean): Promise<number[]> {
  const stream = new Recorder();
  const ch = new PacketChannel(
    stream,
    { onPacket: () => undefined, onClose: () => undefined, onDrain: () => undefined },
    { maxPacketBytes: 1 << 20, protocolVersion: 4, shared },
  );
  for (let i = 0; i < 3; i++) setImmediate(() => ch.write(publish(i)));
  await turn();
  await turn();
  await turn();
  return stream.writes;
}

test('a device connection writes at the end of each callback: three reads, three writes', async () => {
  assert.deepEqual(await writesOf(false), [1, 1, 1]);
});

test('a shared connection writes once per event-loop turn: three reads, one write of three packets', async () => {
  assert.deepEqual(await writesOf(true), [3]);
});

test('a shared connection closed in the turn it wrote sends what it held first', async () => {
  const stream = new Recorder();
  let ended = false;
  stream.on('finish', () => {
    ended = true;
  });
  const ch = new PacketChannel(
    stream,
    { onPacket: () => undefined, onClose: () => undefined, onDrain: () => undefined },
    { maxPacketBytes: 1 << 20, protocolVersion: 4, shared: true },
  );
  ch.write(publish(1));
  ch.write(publish(2));
  ch.end();
  await turn();
  await turn();
  assert.deepEqual(stream.writes, [2]);
  assert.equal(ended, true);
});
