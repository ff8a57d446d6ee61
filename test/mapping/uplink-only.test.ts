/**
 * `downlinks: false` (route connector-to-evrythng-uplink): real Connector devices (MQTT.js,
 * mosquitto_pub) through the real proxy to a real mosquitto playing EVRYTHNG. Uplinks are
 * translated as on the full route; the north session is clean and subscribes to nothing,
 * which the broker's own log shows (the full route, side by side on the same broker, shows
 * its automatic subscription there), and a platform property update never reaches the device.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  closeAll,
  connectClient,
  type MqttClient,
  mosquittoPub,
  nextMessage,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

const API_KEY = 'evt-api-key-uplink-0123';
const TOKEN_UP = 'c0ffee55e948b94841820ea50868a2490632d78f';
const TOKEN_FULL = 'deadbeefe948b94841820ea50868a2490632d78f';

const CREDENTIALS = [
  `- south: { deviceId: "dev-up", token: "${TOKEN_UP}" }`,
  `  north: { thngId: UPONLY, apiKey: "${API_KEY}" }`,
  `- south: { deviceId: "dev-full", token: "${TOKEN_FULL}" }`,
  `  north: { thngId: UFULL, apiKey: "${API_KEY}" }`,
  '',
].join('\n');

describe('route without downlinks (Connector → EVRYTHNG, uplinks only)', () => {
  let broker: MosquittoBroker | undefined;
  let uplinkProxy: TestProxy | undefined;
  let fullProxy: TestProxy | undefined;
  let dir = '';
  const clients: MqttClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mdp-uplink-'));
    const file = join(dir, 'credentials.yaml');
    await writeFile(file, CREDENTIALS, { mode: 0o600 });
    // log_type subscribe: mosquitto logs "<client id> <qos> <filter>" for every subscription.
    broker = await startMosquitto({
      passwords: { authorization: API_KEY, observer: 'observer-pw' },
      extraConfig: 'log_type subscribe',
    });
    const mapping = (route: string) => ({ dir: MAPPINGS_DIR, route, credentials: file });
    uplinkProxy = await startTestProxy({
      north: { url: broker.url },
      mapping: mapping('connector-to-evrythng-uplink'),
    });
    fullProxy = await startTestProxy({
      north: { url: broker.url },
      mapping: mapping('connector-to-evrythng'),
    });
  });

  after(async () => {
    await closeAll(clients);
    await uplinkProxy?.close();
    await fullProxy?.close();
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const connect = async (url: string, id: string, token: string): Promise<MqttClient> => {
    const c = await connectClient(url, {
      clientId: id,
      username: id,
      password: token,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(c);
    return c;
  };

  test('uplinks are translated, the north session is clean and makes no subscription', async () => {
    assert.ok(broker && uplinkProxy && fullProxy);
    const observer = await connectClient(broker.url, {
      username: 'observer',
      password: 'observer-pw',
      clientId: 'obs-uplink',
    });
    clients.push(observer);
    await subscribe(observer, '/thngs/+/properties/#', { qos: 1 });

    const up = await connect(uplinkProxy.url, 'dev-up', TOKEN_UP);
    const seen = nextMessage(observer, '/thngs/UPONLY/properties/temp');
    await publish(up, '$resource/temp', '23', { qos: 1 });
    const m = await seen;
    const body = JSON.parse(m.payload.toString()) as Array<{ value: unknown; timestamp: unknown }>;
    assert.equal(body[0]?.value, 23);
    assert.equal(typeof body[0]?.timestamp, 'number');
    assert.equal(m.packet.qos, 1);

    // The same through the full route, on the same broker: its automatic subscription is logged.
    const full = await connect(fullProxy.url, 'dev-full', TOKEN_FULL);
    const seenFull = nextMessage(observer, '/thngs/UFULL/properties/temp');
    await publish(full, '$resource/temp', '24', { qos: 1 });
    await seenFull;
    await waitFor(
      () => /UFULL \d \/thngs\/UFULL\/properties\/\+/.test(broker?.log() ?? ''),
      5000,
      'UFULL subscribed',
    );

    const log = broker.log();
    // "New client connected from ... as UPONLY (p2, c1, k60, u'authorization')": clean session 1.
    assert.match(log, /as UPONLY \(p2, c1,/);
    assert.match(log, /as UFULL \(p2, c0,/, 'the full route keeps a persistent north session');
    assert.doesNotMatch(log, /UPONLY \d \//, 'no subscription was made for the uplink-only Thng');
  });

  test('a platform property update does not reach an uplink-only device (it does on the full route)', async () => {
    assert.ok(broker && uplinkProxy && fullProxy);
    const up = await connect(uplinkProxy.url, 'dev-up', TOKEN_UP);
    const full = await connect(fullProxy.url, 'dev-full', TOKEN_FULL);
    // The full route's device gets the update: the probe itself works.
    const atFull = nextMessage(full, '$resource/target', 5000);
    // Every message the device gets, whatever its topic ('#' would not match $resource/...).
    const atUp: string[] = [];
    up.on('message', (topic: string) => atUp.push(topic));
    const extra = ['-u', 'observer', '-P', 'observer-pw', '-V', 'mqttv311'];
    for (const thng of ['UPONLY', 'UFULL']) {
      const r = await mosquittoPub({
        url: broker.url,
        topic: `/thngs/${thng}/properties/target`,
        message: '[{"value":19.5}]',
        qos: 1,
        extra,
      });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await atFull).payload.toString(), '19.5');
    // Both probes were published before the full route's arrived; give the other one as long again.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(atUp, [], 'the uplink-only device received a downlink');
  });

  test('uplinks from mosquitto_pub as the device reach the platform', async () => {
    assert.ok(broker && uplinkProxy);
    const observer = await connectClient(broker.url, {
      username: 'observer',
      password: 'observer-pw',
      clientId: 'obs-uplink-2',
    });
    clients.push(observer);
    await subscribe(observer, '/thngs/UPONLY/properties/#', { qos: 1 });
    const seen = nextMessage(observer, '/thngs/UPONLY/properties/hum');
    const pub = await mosquittoPub({
      url: uplinkProxy.url,
      topic: '$resource/hum',
      message: '41',
      qos: 1,
      version: 'mqttv311',
      extra: ['-i', 'dev-up', '-u', 'dev-up', '-P', TOKEN_UP],
    });
    assert.equal(pub.code, 0, pub.stderr);
    const m = await seen;
    assert.equal((JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value, 41);
  });
});
