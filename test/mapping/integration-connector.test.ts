/**
 * Real clients through the real proxy to a real broker: a Connector device (MQTT.js) on
 * the proxy, mosquitto as the north platform (with the platform's credentials enforced),
 * and an MQTT.js observer on mosquitto playing the platform side.
 * Connector ↔ EVRYTHNG both ways, and Connector ↔ akenza (uplink secret) both ways.
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
  mosquittoPub,
  mosquittoSub,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';
const API_KEY = 'evt-api-key-0123456789';
const SECRET = 'akenza-uplink-secret-42';

/** Publishes north until the device sees it: the proxy subscribes north right after CONNACK. */
async function downlinkUntilSeen(
  observer: MqttClient,
  device: MqttClient,
  topic: string,
  payload: string,
  southFilter: string,
) {
  for (let i = 0; i < 20; i++) {
    const seen = collect(device, southFilter, 1, 250).catch(() => undefined);
    await publish(observer, topic, payload, { qos: 1 });
    const got = await seen;
    if (got?.[0]) return got[0];
  }
  throw new Error(`no downlink on ${southFilter} after 20 tries`);
}

interface Rig {
  broker: MosquittoBroker;
  proxy: TestProxy;
  observer: MqttClient;
  dir: string;
  clients: MqttClient[];
}

async function rig(route: string, credentials: string, passwords: Record<string, string>): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'mdp-int-'));
  const file = join(dir, 'credentials.yaml');
  await writeFile(file, credentials, { mode: 0o600 });
  const broker = await startMosquitto({ passwords: { ...passwords, observer: 'observer-pw' } });
  const proxy = await startTestProxy({
    north: { url: broker.url },
    mapping: { dir: MAPPINGS_DIR, route, credentials: file },
  });
  const observer = await connectClient(broker.url, {
    username: 'observer',
    password: 'observer-pw',
    clientId: `obs-${route}`,
  });
  return { broker, proxy, observer, dir, clients: [observer] };
}

async function teardown(r: Rig | undefined) {
  if (!r) return;
  await closeAll(r.clients);
  await r.proxy.close();
  await r.broker.stop();
  await rm(r.dir, { recursive: true, force: true });
}

function device(r: Rig, password = TOKEN): Promise<MqttClient> {
  return connectClient(r.proxy.url, {
    clientId: '12345',
    username: '12345',
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
  }).then((c) => {
    r.clients.push(c);
    return c;
  });
}

describe('Connector device through the proxy to EVRYTHNG (mosquitto)', () => {
  let r: Rig | undefined;
  before(async () => {
    r = await rig(
      'connector-to-evrythng',
      `- south: { deviceId: "12345", token: "${TOKEN}" }\n  north: { thngId: UXYZ, apiKey: "${API_KEY}" }\n`,
      { authorization: API_KEY },
    );
  });
  after(() => teardown(r));

  test('$resource/temp becomes a property update on /thngs/UXYZ/properties/temp', async () => {
    assert.ok(r);
    await subscribe(r.observer, '/thngs/UXYZ/properties/#', { qos: 1 });
    const dev = await device(r);
    const seen = nextMessage(r.observer, '/thngs/UXYZ/properties/temp');
    await publish(dev, '$resource/temp', '23', { qos: 1 });
    const m = await seen;
    const body = JSON.parse(m.payload.toString()) as Array<{ value: unknown; timestamp: unknown }>;
    assert.equal(body.length, 1);
    assert.equal(body[0]?.value, 23);
    assert.equal(typeof body[0]?.timestamp, 'number');
    assert.equal(m.packet.qos, 1);
  });

  test('numbers reach the platform exactly as the device wrote them: 20 digits, a trailing zero', async () => {
    assert.ok(r);
    await subscribe(r.observer, '/thngs/UXYZ/properties/#', { qos: 1 });
    const dev = await device(r);
    const cases: Array<[string, string, RegExp]> = [
      ['counter', '12345678901234567890', /^\[\{"value":12345678901234567890,"timestamp":\d{13}\}\]$/],
      ['reading', '23.10', /^\[\{"value":23\.10,"timestamp":\d{13}\}\]$/],
    ];
    for (const [key, value, want] of cases) {
      const seen = nextMessage(r.observer, `/thngs/UXYZ/properties/${key}`);
      await publish(dev, `$resource/${key}`, value, { qos: 1 });
      assert.match((await seen).payload.toString(), want, value);
    }
  });

  test('a $resource object with three aliases fans out into three property updates', async () => {
    assert.ok(r);
    const dev = await device(r);
    const seen = collect(r.observer, '/thngs/UXYZ/properties/+', 3);
    await publish(dev, '$resource', JSON.stringify({ a: 1, b: 'two', c: true }), { qos: 1 });
    const got = await seen;
    const byTopic = Object.fromEntries(
      got.map((m) => [m.topic, (JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value]),
    );
    assert.deepEqual(byTopic, {
      '/thngs/UXYZ/properties/a': 1,
      '/thngs/UXYZ/properties/b': 'two',
      '/thngs/UXYZ/properties/c': true,
    });
  });

  test('a property update from the platform reaches the auto-subscribed device as $resource/{key}', async () => {
    assert.ok(r);
    const dev = await device(r);
    const m = await downlinkUntilSeen(
      r.observer,
      dev,
      '/thngs/UXYZ/properties/target',
      '[{"value":19.5}]',
      '$resource/target',
    );
    assert.equal(m.topic, '$resource/target');
    assert.equal(m.payload.toString(), '19.5');
    assert.equal(m.packet.qos, 0, 'Connector downlinks are QoS 0');
  });

  test('mosquitto_pub as the device, mosquitto_sub as the platform observer: a batch keeps the device times', async () => {
    assert.ok(r);
    const sub = mosquittoSub({
      url: r.broker.url,
      topics: ['/thngs/UXYZ/properties/batt'],
      count: 1,
      qos: 1,
      extra: ['-u', 'observer', '-P', 'observer-pw'],
    });
    await sub.ready;
    const batch = JSON.stringify([
      { timestamp: 1600000000000000, values: { batt: 90 } },
      { timestamp: 1600000060000000, values: { batt: 89 } },
    ]);
    const pub = await mosquittoPub({
      url: r.proxy.url,
      topic: '$resource.batch',
      message: batch,
      qos: 1,
      version: 'mqttv311',
      extra: ['-i', '12345', '-u', '12345', '-P', TOKEN],
    });
    assert.equal(pub.code, 0, pub.stderr);
    const got = await sub.result;
    assert.equal(got.messages.length, 1);
    assert.deepEqual(JSON.parse(got.messages[0]?.payload ?? ''), [
      { value: 90, timestamp: 1600000000000 },
      { value: 89, timestamp: 1600000060000 },
    ]);
  });

  test('a wrong token is refused with CONNACK 4 and never reaches the platform', async () => {
    assert.ok(r);
    const res = await tryConnect(r.proxy.url, {
      clientId: '12345',
      username: '12345',
      password: 'not-the-token',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    assert.equal(res.closed, true);
    assert.equal(res.connack?.returnCode, 4);
  });
});

describe('Connector device through the proxy to akenza (mosquitto)', () => {
  let r: Rig | undefined;
  before(async () => {
    r = await rig(
      'connector-to-akenza',
      `- south: { deviceId: "12345", token: "${TOKEN}" }\n  north: { connectorId: conn-1, secret: "${SECRET}" }\n`,
      { 'conn-1': SECRET },
    );
  });
  after(() => teardown(r));

  test('$resource/temp becomes a JSON object on /up/{secret}/id/12345', async () => {
    assert.ok(r);
    await subscribe(r.observer, '/up/+/id/12345', { qos: 1 });
    const dev = await device(r);
    const seen = nextMessage(r.observer, '/up/+/id/12345');
    await publish(dev, '$resource/temp', '23', { qos: 1 });
    const m = await seen;
    assert.equal(m.topic, `/up/${SECRET}/id/12345`);
    assert.deepEqual(JSON.parse(m.payload.toString()), { temp: 23 });
  });

  test('an akenza downlink object sets the device resources', async () => {
    assert.ok(r);
    const dev = await device(r);
    const m = await downlinkUntilSeen(
      r.observer,
      dev,
      `/down/${SECRET}/id/12345`,
      '{"mode":"eco"}',
      '$resource/mode',
    );
    assert.equal(m.payload.toString(), 'eco');
  });

  test('secrets never appear in the proxy metrics', async () => {
    assert.ok(r);
    const text = await (await fetch(`${r.proxy.metricsUrl}/metrics`)).text();
    assert.ok(text.includes('mqtt_proxy_'), 'metrics are served');
    assert.ok(!text.includes(SECRET));
    assert.ok(!text.includes(TOKEN));
  });
});
