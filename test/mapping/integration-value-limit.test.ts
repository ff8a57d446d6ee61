/**
 * The Connector's 1 MiB limit per resource value, end to end: a Connector device (MQTT.js)
 * through the proxy on the connector-to-evrythng route to mosquitto playing EVRYTHNG, with an
 * MQTT.js observer on mosquitto. A batch of two 720 KiB values (1.4 MiB) is delivered; a value
 * of 1 MiB + 1 closes the device's connection (reason value_too_large) and never reaches the
 * platform. The proxy's frame limit (limits.maxPacketBytes, 1 MiB + 64 KiB by default) is
 * raised to 4 MiB here so that the 1.4 MiB publish is read at all.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  publish,
  type ReceivedMessage,
  subscribe,
  waitClosed,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';
const API_KEY = 'evt-api-key-0123456789';
const MiB = 1048576;
const KiB = 1024;

async function closesFor(proxy: TestProxy, reason: string): Promise<number> {
  const res = await fetch(`${proxy.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const head = `mqtt_proxy_connection_closes_total{reason="${reason}"} `;
  const line = (await res.text()).split('\n').find((l) => l.startsWith(head));
  return line ? Number(line.slice(head.length)) : 0;
}

describe('Connector 1 MiB per value through the proxy to EVRYTHNG (mosquitto)', () => {
  let broker: MosquittoBroker | undefined;
  let proxy: TestProxy | undefined;
  let observer: MqttClient | undefined;
  let dir = '';
  const clients: MqttClient[] = [];
  /** Every property update the platform receives during the suite. */
  const seen: ReceivedMessage[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mdp-vlim-'));
    const file = join(dir, 'credentials.yaml');
    await writeFile(
      file,
      `- south: { deviceId: "12345", token: "${TOKEN}" }\n  north: { thngId: UXYZ, apiKey: "${API_KEY}" }\n`,
      { mode: 0o600 },
    );
    broker = await startMosquitto({ passwords: { authorization: API_KEY, observer: 'observer-pw' } });
    proxy = await startTestProxy({
      north: { url: broker.url },
      mapping: { dir: MAPPINGS_DIR, route: 'connector-to-evrythng', credentials: file },
      limits: { maxPacketBytes: 4 * MiB },
    });
    observer = await connectClient(broker.url, {
      username: 'observer',
      password: 'observer-pw',
      clientId: 'obs-value-limit',
    });
    clients.push(observer);
    await subscribe(observer, '/thngs/UXYZ/properties/#', { qos: 1 });
    observer.on('message', (topic, payload, packet) => seen.push({ topic, payload, packet }));
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function device(): Promise<MqttClient> {
    assert.ok(proxy);
    const c = await connectClient(proxy.url, {
      clientId: '12345',
      username: '12345',
      password: TOKEN,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(c);
    return c;
  }

  test('a 1.4 MiB $resource.batch of two 720 KiB values reaches the platform as two property updates', async () => {
    assert.ok(observer);
    const a = 'a'.repeat(720 * KiB);
    const b = 'b'.repeat(720 * KiB);
    const batch = JSON.stringify([{ timestamp: 1600000000000000, values: { big_a: a, big_b: b } }]);
    assert.ok(batch.length > 1.4 * MiB, 'the publish is over 1.4 MiB');
    const dev = await device();
    const got = collect(observer, '/thngs/UXYZ/properties/+', 2, 15_000);
    await publish(dev, '$resource.batch', batch, { qos: 1 }, 15_000);
    const byTopic = Object.fromEntries(
      (await got).map((m) => [
        m.topic,
        (JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value,
      ]),
    );
    assert.deepEqual(Object.keys(byTopic).sort(), [
      '/thngs/UXYZ/properties/big_a',
      '/thngs/UXYZ/properties/big_b',
    ]);
    assert.equal(byTopic['/thngs/UXYZ/properties/big_a'], a);
    assert.equal(byTopic['/thngs/UXYZ/properties/big_b'], b);
    assert.equal(dev.connected, true, 'the device stays connected');
  });

  test('a $resource.batch with a value of 1 MiB + 1 closes the connection and never reaches the platform', async () => {
    assert.ok(proxy && observer);
    const before = await closesFor(proxy, 'value_too_large');
    const dev = await device();
    const closed = waitClosed(dev, 10_000);
    const batch = JSON.stringify([
      { timestamp: 1600000000000000, values: { small: 1, huge: 'h'.repeat(MiB + 1) } },
    ]);
    dev.publish('$resource.batch', batch, { qos: 1 });
    await closed;
    assert.equal(await closesFor(proxy, 'value_too_large'), before + 1);
    // A later publish from a new connection arrives; nothing of the refused batch came before it.
    const marker = await device();
    const got = collect(observer, '/thngs/UXYZ/properties/marker', 1, 10_000);
    await publish(marker, '$resource/marker', '1', { qos: 1 });
    await got;
    assert.deepEqual(
      seen.filter((m) => m.topic.endsWith('/huge') || m.topic.endsWith('/small')).map((m) => m.topic),
      [],
    );
  });
});
