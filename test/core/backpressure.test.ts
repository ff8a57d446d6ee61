/**
 * A slow subscriber and a fast publisher: the proxy stops reading from north when the bytes
 * queued toward the subscriber pass the socket's write buffer, so its memory stays bounded
 * instead of growing with the volume sent. A bound, not a timing: 100 MiB are published
 * while the subscriber reads nothing, and the proxy process (in this process) must not hold
 * more than a fraction of that.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { closeAll, connectClient, type MqttClient, publish, waitFor } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, rawConnect } from '../helpers/raw.js';

const MiB = 1024 * 1024;
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Memory still referenced (after a full collection): heap plus Buffer memory. */
const retained = (): number => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

describe('core: slow subscriber, fast publisher', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    // Large north-side queue so that mosquitto, not the proxy, is where a backlog may sit.
    broker = await startMosquitto({
      extraConfig: 'max_inflight_messages 0\nmax_queued_messages 0\nmax_queued_bytes 0',
    });
    proxy = await startTestProxy({ north: { url: broker.url } });
  });
  after(async () => {
    await closeAll(clients);
    await proxy?.close(200);
    await broker?.stop();
  });

  it('memory stays bounded while 100 MiB flow toward a subscriber that does not read', async () => {
    const slow = await rawConnect(Number(new URL(proxy.url).port));
    slow.send(connectPacket({ clientId: 'slow-sub' }));
    assert.equal((await slow.nextPacket()).cmd, 'connack');
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bp/flood', qos: 1 }] });
    assert.equal((await slow.nextPacket()).cmd, 'suback');
    slow.socket.pause();

    const pub = await connectClient(broker.url, { clientId: 'fast-pub' });
    clients.push(pub);
    const payload = Buffer.alloc(64 * 1024, 0x5a);
    const total = 1600; // 100 MiB
    const baseline = retained();
    let peak = baseline;
    let next = 0;
    // Checkpoints every 12.5 MiB sent: what the process still holds then.
    for (let sent = 0; sent < total; sent += 200) {
      const stop = Math.min(total, sent + 200);
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < stop) {
            next++;
            await publish(pub, 'bp/flood', payload, { qos: 1 }, 30_000);
          }
        }),
      );
      peak = Math.max(peak, retained());
    }
    // mosquitto may still be sending what it acknowledged: look again for a while.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 200));
      peak = Math.max(peak, retained());
    }
    const grew = (peak - baseline) / MiB;
    assert.ok(grew < 40, `proxy process memory grew by ${grew.toFixed(1)} MiB while 100 MiB were sent`);
    // The backlog stays north: the proxy stopped reading from mosquitto.
    const readNorth = (await proxy.metrics.bytesTotal.get()).values
      .filter((v) => v.labels.direction === 'north_in' && v.labels.type === 'publish')
      .reduce((a, v) => a + v.value, 0);
    assert.ok(
      readNorth < 32 * MiB,
      `proxy read ${(readNorth / MiB).toFixed(1)} MiB from north for a paused client`,
    );

    // Backpressure, not a drop: the subscriber is still connected and gets messages once it reads.
    assert.equal(slow.isClosed(), false, 'slow subscriber still connected');
    const before = slow.packets.length;
    slow.socket.resume();
    await waitFor(() => slow.packets.length >= before + 50, 20_000, 'messages after resume');
    assert.ok(slow.packets.slice(before).every((p) => p.cmd === 'publish'));
    slow.destroy();
  });
});
