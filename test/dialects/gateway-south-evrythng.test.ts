/**
 * ClearBlade-style gateways connecting south onto EVRYTHNG (route clearblade-gateway-to-evrythng),
 * against mosquitto configured as EVRYTHNG with one API key scoped to two Thngs. Each attached
 * device has its own north session (client id = its Thng id).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  connectGateway,
  northConnected,
  northGone,
  publicPem,
  type TestGateway,
} from './gateway-south-kit.js';
import { captureLogs, ecKey, scrape, startRouteProxy, tempDir, until, writeCredentials } from './kit.js';

const API_KEY = 'evtGwSouthKey0b1c2d3e4f5a6b7c8d9e';

describe('ClearBlade gateways south → EVRYTHNG on mosquitto', () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-evt-');
  const logs = captureLogs();
  const clients: MqttClient[] = [];
  let broker: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  let gw: TestGateway;

  before(async () => {
    broker = await startEvrythngBroker({ apiKey: API_KEY, thngs: ['T1', 'T2'] });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: { thngId: 'T1', apiKey: API_KEY } },
      { south: { deviceId: 'dev-2', gateway: 'gw-1' }, north: { thngId: 'T2', apiKey: API_KEY } },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-evrythng', broker.url, creds, {
      logger: logs.logger,
    });
    platform = await connectClient(broker.url, { ...broker.platform, clientId: 'evrythng-platform' });
    clients.push(platform);
    await subscribe(platform, '/thngs/#', { qos: 1 });
    gw = await connectGateway(proxy.url, 'gw-1', gwKey.privateKey);
    clients.push(gw.client);
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
    await publish(gw.client, '/devices/dev-2/attach', '', { qos: 1 });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
    tmp.cleanup();
  });

  it("turns each device's telemetry into its own Thng's property updates, and a subfolder into an action", async () => {
    await until(
      () => northConnected(broker, 'T1') && northConnected(broker, 'T2'),
      5000,
      'both Thng sessions',
    );
    const up = collect(platform, '/thngs/#', 3, 5000);
    await publish(gw.client, '/devices/dev-1/events', '{"temp":21.5}', { qos: 1 });
    await publish(gw.client, '/devices/dev-2/state', '{"door":"open"}', { qos: 1 });
    await publish(gw.client, '/devices/dev-2/events/alarm', '{"level":3}', { qos: 1 });
    const got = (await up).map((m) => [m.topic, JSON.parse(m.payload.toString())] as const);
    const byTopic = new Map(got);
    assert.equal(byTopic.size, 3, 'three distinct north topics');
    assert.equal((byTopic.get('/thngs/T1/properties/temp') as Array<{ value: unknown }>)[0]?.value, 21.5);
    assert.equal((byTopic.get('/thngs/T2/properties/door') as Array<{ value: unknown }>)[0]?.value, 'open');
    assert.ok(byTopic.has('/thngs/T2/actions/alarm'), 'the subfolder event became an action of that name');
  });

  it("delivers a Thng's property change and action to its device only", async () => {
    await subscribe(gw.client, ['/devices/dev-1/config', '/devices/dev-2/config'], { qos: 1 });
    await subscribe(gw.client, ['/devices/dev-1/commands/#', '/devices/dev-2/commands/#'], { qos: 0 });
    const down = collect(gw.client, '/devices/+/+/#', 2, 5000);
    await publish(platform, '/thngs/T1/properties/target', '[{"value":19}]', { qos: 1 });
    await publish(platform, '/thngs/T2/actions/reboot', '{"type":"reboot"}', { qos: 1 });
    const got = (await down).map((m) => [m.topic, JSON.parse(m.payload.toString())]);
    const extra = await gather(gw.client, '/devices/+/+/#', 300);
    assert.equal(extra.length, 0, 'nothing else reached the gateway');
    assert.deepEqual(
      got.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        ['/devices/dev-1/config', { target: 19 }],
        ['/devices/dev-2/commands/reboot', { type: 'reboot' }],
      ],
    );
  });

  it("detaching a device ends its Thng's north session only", async () => {
    await publish(gw.client, '/devices/dev-1/detach', '', { qos: 1 });
    await until(() => northGone(broker, 'T1'), 5000, 'north to see T1 leave');
    assert.equal(northGone(broker, 'T2'), false);
    const up = collect(platform, '/thngs/T2/#', 1, 5000);
    await publish(gw.client, '/devices/dev-2/events', '{"temp":3}', { qos: 1 });
    assert.equal((await up)[0]?.topic, '/thngs/T2/properties/temp');
  });

  it('never writes the API key or the gateway JWT to a log line or a metric', async () => {
    const text = await scrape(proxy);
    assert.ok(text.includes('mqtt_proxy_'), 'the scrape is the real exposition');
    assert.ok(logs.lines().length > 0, 'debug logs were captured');
    for (const body of [text, logs.text()]) {
      assert.equal(body.includes(API_KEY), false);
      assert.equal(body.includes(gw.jwt), false);
    }
  });
});
