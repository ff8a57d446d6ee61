/**
 * Connector devices behind the proxy acting as a ClearBlade IoT Core gateway (route
 * connector-to-clearblade), against the aedes ClearBlade emulator that verifies the gateway's
 * JWT, attaches and detaches with PUBACKs, reports errors on the errors topic and pushes
 * config and commands. Real MQTT.js clients on both sides.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import {
  closeAll,
  closeClient,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  tryConnect,
  withTimeout,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  captureLogs,
  ecKey,
  metricValue,
  rsaKey,
  scrape,
  startRouteProxy,
  tempDir,
  until,
  writeCredentials,
} from './kit.js';

const PROJECT = 'my-project';
const GATEWAY = 'gw-1';
const gwKey = rsaKey();
const devKey = ecKey();
const otherKey = ecKey();
const tokenOf = (id: string): string => `token-${id}-0123456789abcdef`;

describe('Connector devices behind the proxy as a ClearBlade gateway', () => {
  let cb: ClearBladePlatform;
  let proxy: TestProxy;
  const tmp = tempDir();
  const logs = captureLogs();
  const clients: MqttClient[] = [];
  const device = async (id: string): Promise<MqttClient> => {
    const c = await connectClient(proxy.url, { clientId: id, username: id, password: tokenOf(id) });
    clients.push(c);
    return c;
  };

  before(async () => {
    cb = await startClearBladePlatform({
      project: PROJECT,
      registry: 'my-registry',
      gateways: [{ id: GATEWAY, publicKey: gwKey.publicKey }],
      devices: [
        ...['d1', 'd2', 'd3', 'd4', 'd5', 'd6'].map((id) => ({ id, boundTo: [GATEWAY] })),
        { id: 'unbound' },
        // Not bound: attached only with a valid JWT of their own.
        { id: 'keyed', publicKey: devKey.publicKey },
        { id: 'keyed-wrong', publicKey: devKey.publicKey },
      ],
    });
    const creds = writeCredentials(tmp.dir, [
      ...['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'unbound'].map((id) => ({
        south: { deviceId: id, token: tokenOf(id) },
        north: { privateKey: gwKey.pem },
      })),
      {
        south: { deviceId: 'keyed', token: tokenOf('keyed') },
        north: { privateKey: gwKey.pem, deviceKey: devKey.pem },
      },
      {
        south: { deviceId: 'keyed-wrong', token: tokenOf('keyed-wrong') },
        north: { privateKey: gwKey.pem, deviceKey: otherKey.pem },
      },
    ]);
    proxy = await startRouteProxy('connector-to-clearblade', cb.url, creds, {
      overrides: { north: { connectTimeoutMs: 2000 } },
      logger: logs.logger,
    });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await cb?.stop();
    tmp.cleanup();
  });

  it('shares one gateway connection, attaches each device before its telemetry flows', async () => {
    const d1 = await device('d1');
    const d2 = await device('d2');
    assert.deepEqual(cb.attached(GATEWAY), ['d1', 'd2']);
    await publish(d1, '$resource/temp', '21.5', { qos: 1 });
    await publish(d2, '$resource', '{"hum":40,"on":true}', { qos: 1 });
    await cb.waitFor(() => cb.telemetry('d1').length === 1 && cb.telemetry('d2').length === 1);
    assert.deepEqual(JSON.parse(cb.telemetry('d1')[0]?.payload ?? ''), { temp: 21.5 });
    assert.deepEqual(JSON.parse(cb.telemetry('d2')[0]?.payload ?? ''), { hum: 40, on: true });
    assert.equal(cb.telemetry('d1')[0]?.via, GATEWAY);
    // Telemetry for an unattached device would have been reported as an error.
    assert.deepEqual(cb.errors, []);
    // Each attach was acknowledged before the device's CONNACK, and only the gateway connected.
    const attaches = cb.controls.filter((c) => c.op === 'attach');
    assert.deepEqual(
      attaches.map((c) => [c.gatewayId, c.deviceId, c.ok]),
      [
        [GATEWAY, 'd1', true],
        [GATEWAY, 'd2', true],
      ],
    );
    assert.equal(cb.online('d1'), false, 'devices have no connection of their own');
  });

  it('delivers config (QoS 1) and commands to the right device only', async () => {
    const d3 = await device('d3');
    const d4 = await device('d4');
    const other = nextMessage(d4, '#', 1500).then(
      () => 'received',
      () => 'nothing',
    );
    const got = nextMessage(d3, '$resource/interval', 5000);
    cb.sendConfig('d3', '{"interval":60}');
    const m = await got;
    assert.equal(m.payload.toString(), '60');
    assert.equal(m.packet.qos, 0, 'Connector downlinks are QoS 0');
    const cmd = nextMessage(d3, '$resource/led', 5000);
    assert.equal(cb.sendCommand('d3', '{"led":"on"}', 'lights'), true);
    assert.equal((await cmd).payload.toString(), 'on');
    assert.equal(await other, 'nothing', 'd4 receives nothing addressed to d3');
  });

  it('detaches a device when it leaves, keeping the others attached', async () => {
    await until(() => cb.attached(GATEWAY).includes('d4'));
    const d4 = clients.find((c) => c.options.clientId === 'd4');
    await closeClient(d4);
    await cb.waitFor(() => cb.controls.some((c) => c.op === 'detach' && c.deviceId === 'd4'));
    await cb.waitFor(() => !cb.attached(GATEWAY).includes('d4'));
    assert.ok(cb.attached(GATEWAY).includes('d1'));
  });

  it('reconnects when the platform closes the gateway connection, re-attaching every device; devices stay connected', async () => {
    const d1 = clients.find((c) => c.options.clientId === 'd1');
    const d2 = clients.find((c) => c.options.clientId === 'd2');
    assert.ok(d1?.connected && d2?.connected);
    const attachesBefore = cb.controls.filter((c) => c.op === 'attach' && c.deviceId === 'd1').length;
    assert.equal(cb.expire(GATEWAY), 1, 'exactly one gateway connection (shared by every device)');
    // Published while the gateway is away: held by the proxy, delivered after the re-attach.
    const sent = publish(d1, '$resource/temp', '22', { qos: 1 }, 15_000);
    await cb.waitFor(() => cb.online(GATEWAY), 10_000, 'the gateway back online');
    await sent;
    await cb.waitFor(() => cb.telemetry('d1').some((t) => t.payload === '{"temp":22}'), 10_000);
    assert.ok(
      cb.controls.filter((c) => c.op === 'attach' && c.deviceId === 'd1').length > attachesBefore,
      'd1 attached again on the new connection',
    );
    assert.deepEqual(cb.attached(GATEWAY), ['d1', 'd2', 'd3']);
    assert.equal(d1.connected && d2.connected, true, 'devices stayed connected');
    const cmd = nextMessage(d2, '$resource/mode', 5000);
    assert.equal(cb.sendCommand('d2', '{"mode":"eco"}'), true);
    assert.equal((await cmd).payload.toString(), 'eco');
  });

  it("subscribes a device's config and commands once per gateway connection: its stored config arrives once", async () => {
    const subs = (filter: string): number => cb.subscribes.filter((x) => x.topic === filter).length;
    const config = '/devices/d5/config';
    const commands = '/devices/d5/commands/#';
    // Uplinks are written after every subscription the proxy makes for the device on the same
    // connection, so once one has arrived the platform has seen them all.
    const roundTrip = async (value: string): Promise<void> => {
      await publish(d5, '$resource/temp', value, { qos: 1 }, 15_000);
      await cb.waitFor(() => cb.telemetry('d5').some((t) => t.payload === `{"temp":${value}}`), 10_000);
    };
    cb.sendConfig('d5', '{"interval":30}'); // stored: sent when the device's config is subscribed
    // Listening before the CONNACK: the stored config may follow it in the same read.
    const d5 = mqtt.connect(proxy.url, {
      clientId: 'd5',
      username: 'd5',
      password: tokenOf('d5'),
      reconnectPeriod: 0,
    });
    clients.push(d5);
    const configs: string[] = [];
    d5.on('message', (topic, payload) => {
      if (topic === '$resource/interval') configs.push(payload.toString());
    });
    const connected = new Promise<void>((resolve, reject) => {
      d5.once('connect', () => resolve());
      d5.once('error', reject);
    });
    await withTimeout(connected, 5000, 'the CONNACK of d5');
    await roundTrip('1');
    await until(() => configs.length > 0);
    assert.deepEqual([subs(config), subs(commands)], [1, 1]);
    // Once more on the next gateway connection, not once for each time the device subscribed.
    assert.equal(cb.expire(GATEWAY), 1);
    await cb.waitFor(() => cb.online(GATEWAY) && cb.attached(GATEWAY).includes('d5'), 10_000);
    await roundTrip('2');
    await until(() => configs.length > 1);
    assert.deepEqual([subs(config), subs(commands)], [2, 2]);
    assert.deepEqual(configs, ['30', '30']);
  });

  it("logs a device's automatic subscription that the platform refused, by shape; the device stays connected", async () => {
    cb.refuseSubscriptions('d6');
    const refusals = (): Array<Record<string, unknown>> =>
      logs
        .lines()
        .filter((l) => l.msg === 'north broker refused an automatic subscription: no downlinks on it');
    const before = refusals().length;
    const d6 = await device('d6');
    await until(() => refusals().length > before);
    const line = refusals().at(-1) ?? {};
    assert.equal(line.route, 'connector-to-clearblade');
    assert.deepEqual(line.refused, ['4 levels, first: devices', '5 levels, first: devices']);
    assert.ok(!logs.text().includes('/devices/d6/'), 'filters are logged by shape only');
    await publish(d6, '$resource/temp', '18', { qos: 1 });
    await cb.waitFor(() => cb.telemetry('d6').length === 1);
    assert.equal(d6.connected, true);
    // Again when the gateway link reconnects and re-attaches the device.
    const once = refusals().length;
    assert.equal(cb.expire(GATEWAY), 1);
    await cb.waitFor(() => refusals().length > once, 10_000, 'the refusal logged after the reconnect');
    assert.deepEqual(refusals().at(-1)?.refused, ['4 levels, first: devices', '5 levels, first: devices']);
    assert.equal(d6.connected, true);
  });

  it('attaches a device with its own JWT (signed with its key, ES256) when its record has one; a wrong key is refused', async () => {
    const keyed = await device('keyed');
    assert.ok(cb.attached(GATEWAY).includes('keyed'));
    await publish(keyed, '$resource/temp', '19', { qos: 1 });
    await cb.waitFor(() => cb.telemetry('keyed').length === 1);
    const r = await tryConnect(proxy.url, {
      clientId: 'keyed-wrong',
      username: 'keyed-wrong',
      password: tokenOf('keyed-wrong'),
    });
    assert.notEqual(r.connack?.returnCode ?? -1, 0);
    assert.ok(
      cb.controls.some((c) => c.op === 'attach' && c.deviceId === 'keyed-wrong' && !c.ok),
      'the platform refused the attach',
    );
    assert.ok(!cb.attached(GATEWAY).includes('keyed-wrong'));
  });

  it('routes an attachment error to the device it names: counted, and the Connector device is refused', async () => {
    const count = async (): Promise<number> =>
      metricValue(await scrape(proxy), 'mqtt_proxy_gateway_errors_total', 'type="GATEWAY_ATTACHMENT_ERROR"');
    const before = await count();
    const r = await tryConnect(proxy.url, {
      clientId: 'unbound',
      username: 'unbound',
      password: tokenOf('unbound'),
    });
    assert.notEqual(r.connack?.returnCode ?? -1, 0, 'no successful CONNACK');
    assert.ok(
      cb.errors.some((e) => e.error_type === 'GATEWAY_ATTACHMENT_ERROR' && e.device_id === 'unbound'),
    );
    assert.equal(await count(), before + 1);
  });
});
