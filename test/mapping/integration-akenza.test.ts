/**
 * An MQTT 5 akenza device (MQTT.js) through the real proxy to EVRYTHNG played by mosquitto:
 * MQTT version bridging (the content type cannot reach a 3.1.1 platform: dropped and
 * counted), subscription translation with the SUBACK mapped back, and downlinks delivered
 * on the device's own topics with the declared content type.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

const SECRET = 'akenza-secret-7f3a';
const API_KEY = 'evt-key-91';
let broker: MosquittoBroker | undefined;
let proxy: TestProxy | undefined;
let dir = '';
const clients: MqttClient[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mdp-akenza-'));
  const creds = join(dir, 'creds.yaml');
  await writeFile(
    creds,
    `- south: { deviceId: dev-1, connectorId: conn-1, secret: "${SECRET}" }\n  north: { thngId: UXYZ, apiKey: "${API_KEY}" }\n`,
  );
  broker = await startMosquitto({ passwords: { authorization: API_KEY, observer: 'obs-pw' } });
  proxy = await startTestProxy({
    north: { url: broker.url },
    mapping: { dir: MAPPINGS_DIR, route: 'akenza-to-evrythng', credentials: creds },
  });
});

after(async () => {
  await closeAll(clients);
  await proxy?.close();
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function clientsUp(): Promise<{ device: MqttClient; observer: MqttClient }> {
  assert.ok(proxy && broker);
  const observer = await connectClient(broker.url, {
    username: 'observer',
    password: 'obs-pw',
    clientId: 'observer',
  });
  const device = await connectClient(proxy.url, {
    protocolVersion: 5,
    clientId: 'dev-1',
    username: 'conn-1',
    password: SECRET,
    reconnectPeriod: 0,
  });
  clients.push(observer, device);
  return { device, observer };
}

test('an MQTT 5 akenza device reaches EVRYTHNG; the content type it cannot carry is counted', async () => {
  const { device, observer } = await clientsUp();
  assert.ok(proxy);
  await subscribe(observer, '/thngs/UXYZ/#', { qos: 1 });
  const prop = nextMessage(observer, '/thngs/UXYZ/properties/temp');
  await publish(device, `/up/${SECRET}/id/dev-1`, '{"temp":21.5}', { qos: 1 });
  assert.equal(JSON.parse((await prop).payload.toString())[0].value, 21.5);

  const action = nextMessage(observer, '/thngs/UXYZ/actions/alerts_critical');
  await publish(device, `/up/${SECRET}/id/dev-1/alerts/critical`, '<alert/>', {
    qos: 1,
    properties: { contentType: 'application/xml' },
  });
  assert.equal((await action).payload.toString(), '<alert/>');
  const metrics = await (await fetch(`${proxy.metricsUrl}/metrics`)).text();
  assert.match(
    metrics,
    /mqtt_proxy_messages_total\{[^}]*outcome="translated"[^}]*reason="properties_dropped"[^}]*\} 1/,
  );
  assert.ok(!metrics.includes(SECRET), 'the secret in the topic never reaches a metric');
});

test('a device subscription becomes EVRYTHNG subscriptions; downlinks arrive on its own topics', async () => {
  const { device, observer } = await clientsUp();
  const granted = await subscribe(device, `/down/${SECRET}/id/dev-1/#`, { qos: 1 });
  assert.equal(granted[0]?.qos, 1, 'SUBACK mapped back from the north grants');
  // MQTT.js rejects a SUBACK failure (0x80): another device's downlinks are refused.
  await assert.rejects(subscribe(device, '/down/other-secret/id/dev-2/#', { qos: 1 }), /Unspecified error/);

  const cmd = nextMessage(device, `/down/${SECRET}/id/dev-1/+`);
  await publish(observer, '/thngs/UXYZ/actions/scan', '{"type":"scan"}', { qos: 1 });
  const m = await cmd;
  assert.equal(m.topic, `/down/${SECRET}/id/dev-1/scan`);
  assert.equal(m.payload.toString(), '{"type":"scan"}');
  assert.equal(m.packet.properties?.contentType, 'application/json');

  const set = nextMessage(device, `/down/${SECRET}/id/dev-1`);
  await publish(observer, '/thngs/UXYZ/properties/target', '[{"value":19}]', { qos: 1 });
  assert.deepEqual(JSON.parse((await set).payload.toString()), { target: 19 });
});

test('an uplink sent before the device subscribed is no echo: the same document from the platform arrives', async () => {
  const { device, observer } = await clientsUp();
  await subscribe(observer, '/thngs/UXYZ/actions/+', { qos: 1 });
  // Sent while no north subscription covers the action topics: the broker never sends it back.
  const seen = nextMessage(observer, '/thngs/UXYZ/actions/scan');
  await publish(device, `/up/${SECRET}/id/dev-1/scan`, '{"type":"scan","n":1}', { qos: 1 });
  await seen;
  await subscribe(device, `/down/${SECRET}/id/dev-1/#`, { qos: 1 });
  // The platform sends the very same document: a downlink, not the echo of the uplink above.
  const cmd = nextMessage(device, `/down/${SECRET}/id/dev-1/+`);
  await publish(observer, '/thngs/UXYZ/actions/scan', '{"type":"scan","n":1}', { qos: 1 });
  assert.equal((await cmd).payload.toString(), '{"type":"scan","n":1}');

  // Now subscribed: the device's own uplink comes back from the broker and is dropped; the
  // next message the device gets is the platform's.
  const next = nextMessage(device, `/down/${SECRET}/id/dev-1/+`);
  const own = nextMessage(observer, '/thngs/UXYZ/actions/scan');
  await publish(device, `/up/${SECRET}/id/dev-1/scan`, '{"type":"scan","n":2}', { qos: 1 });
  await own;
  await publish(observer, '/thngs/UXYZ/actions/scan', '{"type":"scan","n":3}', { qos: 1 });
  assert.equal((await next).payload.toString(), '{"type":"scan","n":3}');
});

test("a client id that names no device is accepted, as in the spec's examples (an arbitrary client id)", async () => {
  assert.ok(proxy && broker);
  const observer = await connectClient(broker.url, {
    username: 'observer',
    password: 'obs-pw',
    clientId: 'obs-2',
  });
  const device = await connectClient(proxy.url, {
    clientId: 'mqtt-test-client',
    username: 'conn-1',
    password: SECRET,
    reconnectPeriod: 0,
  });
  clients.push(observer, device);
  await subscribe(observer, '/thngs/UXYZ/properties/hum', { qos: 1 });
  const prop = nextMessage(observer, '/thngs/UXYZ/properties/hum');
  await publish(device, `/up/${SECRET}/id/dev-1`, '{"hum":40}', { qos: 1 });
  assert.equal(JSON.parse((await prop).payload.toString())[0].value, 40);
});
