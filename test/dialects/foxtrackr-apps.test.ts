/**
 * foxtrackr as the north side: applications speaking Connector or EVRYTHNG connect through
 * the proxy and receive tracker data from a foxtrackr broker (mosquitto with logins),
 * translated into their own dialect. The north session is persistent (clean session 0, the
 * client id id-{given}-{nn} from the credentials), so data published while an application
 * is offline reaches it when it comes back.
 *
 * These routes are not shipped: the test writes them into a copy of the mappings folder.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import {
  closeAll,
  closeClient,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS, tempDir, until, writeCredentials } from './kit.js';

const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';
const API_KEY = 'evt-app-key-0123456789';
const PUBLISHER = { username: 'foxtrackr-platform', password: 'platform-pw-123' };
const envelope = (field: string, body: unknown, timeMs: number, deviceId: string): string =>
  JSON.stringify({ messageType: 1, deviceId, version: 3, timeMs, [field]: body });

describe('applications receiving foxtrackr data through the proxy', () => {
  let fox: MosquittoBroker;
  let publisher: MqttClient;
  let connectorProxy: TestProxy;
  let evrythngProxy: TestProxy;
  const tmp = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    fox = await startMosquitto({
      passwords: {
        'fox-app': 'fox-app-pw',
        'fox-evt': 'fox-evt-pw',
        [PUBLISHER.username]: PUBLISHER.password,
      },
    });
    const dir = join(tmp.dir, 'mappings');
    cpSync(MAPPINGS, dir, { recursive: true });
    writeFileSync(
      join(dir, 'routes', 'connector-app-foxtrackr.yaml'),
      'route: connector-app-foxtrackr\nsouth: connector\nnorth: foxtrackr\nidentity: { key: token }\n',
    );
    writeFileSync(
      join(dir, 'routes', 'evrythng-app-foxtrackr.yaml'),
      'route: evrythng-app-foxtrackr\nsouth: evrythng\nnorth: foxtrackr\nidentity: { key: apiKey }\n',
    );
    const connectorCreds = writeCredentials(
      tmp.dir,
      [
        {
          south: { deviceId: '12345', token: TOKEN },
          north: { username: 'fox-app', password: 'fox-app-pw', clientId: 'id-app-01' },
        },
      ],
      'connector.yaml',
    );
    const evrythngCreds = writeCredentials(
      tmp.dir,
      [
        {
          south: { apiKey: API_KEY, thngId: 'UXYZ777' },
          north: { deviceId: '777', username: 'fox-evt', password: 'fox-evt-pw', clientId: 'id-evt-02' },
        },
      ],
      'evrythng.yaml',
    );
    connectorProxy = await startTestProxy({
      north: { url: fox.url },
      mapping: { dir, route: 'connector-app-foxtrackr', credentials: connectorCreds },
    });
    evrythngProxy = await startTestProxy({
      north: { url: fox.url },
      mapping: { dir, route: 'evrythng-app-foxtrackr', credentials: evrythngCreds },
    });
    publisher = await connectClient(fox.url, { ...PUBLISHER, clientId: 'id-platform-01' });
    clients.push(publisher);
  });

  after(async () => {
    await closeAll(clients);
    await Promise.all([connectorProxy?.close(500), evrythngProxy?.close(500)]);
    await fox?.stop();
    tmp.cleanup();
  });

  it('a Connector application gets each tracker type as a $resource value', async () => {
    const app = await connectClient(connectorProxy.url, {
      clientId: '12345',
      username: '12345',
      password: TOKEN,
    });
    clients.push(app);
    const got = nextMessage(app, '$resource/battery', 5000);
    // The north subscription is made as the session starts; give the CONNACK round trip a moment.
    await new Promise((r) => setTimeout(r, 300));
    await publish(
      publisher,
      'foxtrackr/12345/V3.0/bat',
      envelope('battery', { level: 87 }, 1700000000000, '12345'),
      {
        qos: 1,
      },
    );
    assert.deepEqual(JSON.parse((await got).payload.toString()), { level: 87 });
    const log = fox.log();
    assert.match(log, /New client connected from [0-9.:]+ as id-app-01 \(p2, c0, k\d+, u'fox-app'\)/);
    await closeClient(app);
  });

  it('the Connector application misses nothing while offline: the north session is persistent', async () => {
    // The previous test's application has gone; its north session (clean 0, id-app-01) stays.
    await until(() => connectorProxy.connectionCount() === 0, 5000, 'the first application gone');
    await publish(
      publisher,
      'foxtrackr/12345/V3.0/temp',
      envelope('temperature', { c: 4.5 }, 1700000005000, '12345'),
      {
        qos: 1,
      },
    );
    // Listening from the first byte: what the platform kept arrives right after the CONNACK.
    const app = mqtt.connect(connectorProxy.url, {
      clientId: '12345',
      username: '12345',
      password: TOKEN,
      reconnectPeriod: 0,
    });
    clients.push(app);
    const got: Array<[string, string]> = [];
    app.on('message', (topic, payload) => got.push([topic, payload.toString()]));
    await until(() => got.length > 0, 5000, 'the message kept while offline');
    assert.deepEqual(got, [['$resource/temperature', '{"c":4.5}']]);
  });

  it('an EVRYTHNG application subscribed to a Thng gets tracker data as properties with ms timestamps', async () => {
    const app = await connectClient(evrythngProxy.url, {
      clientId: 'evt-app',
      username: 'authorization',
      password: API_KEY,
    });
    clients.push(app);
    // EVRYTHNG topics have no wildcards: one property per subscription.
    await subscribe(app, '/thngs/UXYZ777/properties/battery', { qos: 1 });
    const got = nextMessage(app, '/thngs/UXYZ777/properties/battery', 5000);
    await publish(
      publisher,
      'foxtrackr/777/V3.0/bat',
      envelope('battery', { level: 55 }, 1700000009000, '777'),
      {
        qos: 1,
      },
    );
    assert.deepEqual(JSON.parse((await got).payload.toString()), [
      { value: { level: 55 }, timestamp: 1700000009000 },
    ]);
    assert.match(fox.log(), /as id-evt-02 /);
  });

  it('an EVRYTHNG application with clean session 1 misses nothing while offline: foxtrackr sessions persist north', async () => {
    // The previous test's application (clean session 1, MQTT.js's default) has gone; the
    // foxtrackr dialect is `persistent`, so its north session (id-evt-02) keeps what arrives.
    for (const c of clients.splice(1)) await closeClient(c);
    await until(() => evrythngProxy.connectionCount() === 0, 5000, 'the application gone');
    await publish(
      publisher,
      'foxtrackr/777/V3.0/bat',
      envelope('battery', { level: 54 }, 1700000010000, '777'),
      {
        qos: 1,
      },
    );
    const app = mqtt.connect(evrythngProxy.url, {
      clientId: 'evt-app',
      username: 'authorization',
      password: API_KEY,
      clean: true,
      reconnectPeriod: 0,
    });
    clients.push(app);
    const got: string[] = [];
    app.on('message', (_topic, payload) => got.push(payload.toString()));
    await new Promise<void>((resolve, reject) => {
      app.once('connect', () => resolve());
      app.once('error', reject);
    });
    await subscribe(app, '/thngs/UXYZ777/properties/battery', { qos: 1 });
    await until(() => got.length > 0, 5000, 'the message kept while offline');
    assert.deepEqual(JSON.parse(got[0]!), [{ value: { level: 54 }, timestamp: 1700000010000 }]);
  });
});
