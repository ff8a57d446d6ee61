/**
 * Connector devices onto akenza with the uplink-secret scheme (route connector-to-akenza),
 * against mosquitto configured as akenza: the connector id and secret in a password file,
 * ACLs on /up/{secret}/… and /down/{secret}/…. The secret is part of every topic on the
 * north side; it must never appear in a log line (captured at debug level) or in /metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startAkenzaSecretBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { captureLogs, scrape, startRouteProxy, tempDir, writeCredentials } from './kit.js';

const SECRET = 'akzSecret7f3e9a1b2c4d5e6f';
const WRONG = 'akzWrong00000000000000000';
const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';
const TOKEN_WRONG = 'c0ffee55e948b94841820ea50868a2490632d78f';

describe('Connector → akenza, uplink-secret scheme, on mosquitto', () => {
  let broker: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  const tmp = tempDir();
  const logs = captureLogs();
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startAkenzaSecretBroker({ connectors: [{ id: 'conn-1', secret: SECRET }] });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: '12345', token: TOKEN }, north: { connectorId: 'conn-1', secret: SECRET } },
      // A record whose secret the platform does not know.
      { south: { deviceId: '666', token: TOKEN_WRONG }, north: { connectorId: 'conn-1', secret: WRONG } },
    ]);
    proxy = await startRouteProxy('connector-to-akenza', broker.url, creds, { logger: logs.logger });
    platform = await connectClient(broker.url, { ...broker.platform, clientId: 'akenza-platform' });
    clients.push(platform);
    await subscribe(platform, '/up/#', { qos: 1 });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
    tmp.cleanup();
  });

  it('publishes $resource values as a JSON object on /up/{secret}/id/{deviceId}', async () => {
    const dev = await connectClient(proxy.url, { clientId: '12345', username: '12345', password: TOKEN });
    clients.push(dev);
    const up = nextMessage(platform, '/up/#', 5000);
    await publish(dev, '$resource/temp', '23.5', { qos: 1 });
    const m = await up;
    assert.equal(m.topic, `/up/${SECRET}/id/12345`);
    assert.deepEqual(JSON.parse(m.payload.toString()), { temp: 23.5 });
    const up2 = nextMessage(platform, '/up/#', 5000);
    await publish(dev, '$resource', '{"hum":41,"door":"open"}', { qos: 0 });
    assert.deepEqual(JSON.parse((await up2).payload.toString()), { hum: 41, door: 'open' });
  });

  it('delivers /down/{secret}/id/{deviceId} and its subtopics to the device as resource values', async () => {
    const dev = clients.find((c) => c.options.clientId === '12345') as MqttClient;
    const a = nextMessage(dev, '$resource/target', 5000);
    await publish(platform, `/down/${SECRET}/id/12345`, '{"target":22}', { qos: 1 });
    assert.equal((await a).payload.toString(), '22');
    const b = nextMessage(dev, '$resource/interval', 5000);
    await publish(platform, `/down/${SECRET}/id/12345/settings`, '{"interval":60}', { qos: 1 });
    assert.equal((await b).payload.toString(), '60');
  });

  it('refuses a device whose akenza secret the platform rejects', async () => {
    const r = await tryConnect(proxy.url, { clientId: '666', username: '666', password: TOKEN_WRONG });
    assert.equal(r.client.connected, false);
    assert.notEqual(r.connack?.returnCode ?? 0x80, 0);
  });

  it('never writes the secret to a log line or a metric, though it is in every north topic', async () => {
    const text = await scrape(proxy);
    assert.ok(text.includes('mqtt_proxy_messages_total'), 'the scrape is the real exposition');
    assert.ok(logs.lines().length > 0, 'debug logs were captured');
    for (const [where, body] of [
      ['metrics', text],
      ['logs', logs.text()],
    ] as const) {
      for (const s of [SECRET, WRONG, TOKEN, TOKEN_WRONG]) {
        assert.equal(body.includes(s), false, `a secret appears in the ${where}`);
      }
    }
  });
});
