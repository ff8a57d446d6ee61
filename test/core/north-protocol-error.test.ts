/**
 * A north broker that breaks the protocol (a second CONNACK) closes the device's connection
 * with the reason `north_protocol_error`, once prefixed.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { closeAll, connectClient, type MqttClient } from '../helpers/clients.js';
import { startTestProxy } from '../helpers/proxy.js';

test('a second CONNACK from north closes with reason north_protocol_error', async () => {
  const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
  const sockets = new Set<net.Socket>();
  const broker = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => {
      s.write(CONNACK);
      setTimeout(() => s.write(CONNACK), 100);
    });
  });
  await new Promise<void>((r) => broker.listen(0, '127.0.0.1', r));
  const { port } = broker.address() as net.AddressInfo;
  const proxy = await startTestProxy({ north: { url: `mqtt://127.0.0.1:${port}` } });
  const clients: MqttClient[] = [];
  try {
    const c = await connectClient(proxy.url, { reconnectPeriod: 0 });
    clients.push(c);
    const deadline = Date.now() + 5000;
    let text = '';
    while (Date.now() < deadline) {
      text = await proxy.metrics.registry.metrics();
      if (/^mqtt_proxy_connection_closes_total\{[^}]*reason="[a-z_]*protocol_error"/m.test(text)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const reasons = [...text.matchAll(/^mqtt_proxy_connection_closes_total\{[^}]*reason="([^"]+)"/gm)].map(
      (m) => m[1],
    );
    assert.ok(reasons.includes('north_protocol_error'), `reasons: ${reasons.join(', ')}`);
    assert.ok(!reasons.some((r) => r?.startsWith('north_north_')), `reasons: ${reasons.join(', ')}`);
  } finally {
    await closeAll(clients);
    await proxy.close(200);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => broker.close(() => r()));
  }
});
