/**
 * The in-memory stream pair under the inner clients (native WebSocket, gateway devices): a side
 * that is not read holds back its writer instead of queueing without bound, and the writer
 * learns it (write() false, then 'drain'), as InnerClient.send does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { InnerClient } from '../../src/codec/inner-client.js';
import { streamPair } from '../../src/codec/stream-pair.js';
import { turn } from './kit.js';

describe('streamPair backpressure', () => {
  it('a paused reader holds its writer back: write() turns false, the queue stays bounded, drain follows', async () => {
    const [a, b] = streamPair();
    const got: Buffer[] = [];
    b.on('data', (c: Buffer) => got.push(c));
    b.pause();
    const chunk = Buffer.alloc(1024, 7);
    let refused = 0;
    for (let i = 0; i < 1000; i++) if (!a.write(chunk)) refused++;
    await turn();
    assert.ok(refused > 900, `write() said false for the writes past the marks (${refused} of 1000)`);
    // The chunk whose callback is held is counted on both sides.
    const queued = b.readableLength + a.writableLength;
    assert.ok(queued >= 1000 * 1024, `every byte is kept, nothing dropped (${queued})`);
    assert.ok(
      b.readableLength <= b.readableHighWaterMark + chunk.length,
      `the paused side holds one high-water mark, not everything (${b.readableLength} bytes)`,
    );
    const drained = new Promise<void>((resolve) => a.once('drain', () => resolve()));
    b.resume();
    await drained;
    for (let i = 0; i < 100 && got.reduce((n, c) => n + c.length, 0) < 1000 * 1024; i++) await turn();
    assert.equal(
      got.reduce((n, c) => n + c.length, 0),
      1000 * 1024,
      'all of it arrives once read',
    );
  });

  it('InnerClient.send returns false while the session side is not read, and onDrain comes when it is', async () => {
    const [inner, outer] = streamPair();
    inner.on('data', () => {});
    let drains = 0;
    const client = new InnerClient(
      outer,
      { cmd: 'connect', clientId: 'bp', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0 },
      { onConnack: () => {}, onPacket: (_p: Packet) => {}, onClose: () => {}, onDrain: () => drains++ },
    );
    inner.pause();
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const ok = client.send({
        cmd: 'publish',
        topic: 't',
        payload: Buffer.alloc(1024),
        qos: 0,
        retain: false,
        dup: false,
      });
      if (!ok) refused++;
    }
    assert.ok(refused > 0, 'send() reported the session not reading');
    assert.equal(drains, 0);
    inner.resume();
    for (let i = 0; i < 100 && drains === 0; i++) await turn();
    assert.equal(drains, 1, 'onDrain once the session reads again');
    client.close();
  });
});
