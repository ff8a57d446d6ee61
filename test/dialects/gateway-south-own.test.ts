/**
 * Route clearblade-gateway-to-akenza, the clients that are not just attached devices: a
 * gateway's own telemetry, state, config and commands (a gateway is a device too, when its
 * record has north credentials), a gateway without them (its own topics refused, its devices
 * served), and a ClearBlade device connecting directly (served as a device, attaching
 * nothing). MQTT.js clients south, mosquitto configured as akenza north.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IPublishPacket } from 'mqtt-packet';
import { type MosquittoPlatform, startAkenzaSecretBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  publish,
  subscribe,
  waitClosed,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { rawConnect } from '../helpers/raw.js';
import { cbJwt, clientIdFor, connectGateway, northConnected, publicPem } from './gateway-south-kit.js';
import {
  captureLogs,
  ecKey,
  metricValue,
  scrape,
  startRouteProxy,
  tempDir,
  writeCredentials,
} from './kit.js';

const SECRET = 'akzGwOwn7c2e9a4b1d8f3e6a5b';
const NORTH = { connectorId: 'conn-1', secret: SECRET };

describe("a south gateway route: the gateway's own topics and devices connecting directly", () => {
  const gw1 = ecKey();
  const gw2 = ecKey();
  const devKey = ecKey();
  const jKey = ecKey();
  const tmp = tempDir('mdp-gw-own-');
  const logs = captureLogs();
  const clients: MqttClient[] = [];
  let broker: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;

  before(async () => {
    broker = await startAkenzaSecretBroker({ connectors: [{ id: 'conn-1', secret: SECRET }] });
    const creds = writeCredentials(tmp.dir, [
      // A gateway that is a device of its own on akenza.
      { south: { deviceId: 'gw-1', publicKey: publicPem(gw1.publicKey), role: 'gateway' }, north: NORTH },
      // A gateway with no north record of its own.
      { south: { deviceId: 'gw-2', publicKey: publicPem(gw2.publicKey), role: 'gateway' }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: NORTH },
      { south: { deviceId: 'dev-2', gateway: 'gw-2' }, north: NORTH },
      // Not a gateway: a device with a key of its own, connecting directly.
      { south: { deviceId: 'dev-d', publicKey: publicPem(devKey.publicKey) }, north: NORTH },
      // A device any gateway may attach with its JWT.
      { south: { deviceId: 'dev-j', publicKey: publicPem(jKey.publicKey) }, north: NORTH },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', broker.url, creds, { logger: logs.logger });
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

  it("sends a gateway's own events and state north as its own device, and its config and commands back", async () => {
    const gw = await connectGateway(proxy.url, 'gw-1', gw1.privateKey);
    clients.push(gw.client);
    // Its own session was opened on its CONNECT (the CONNACK waited for it).
    assert.equal(northConnected(broker, 'gw-1'), true, 'the gateway has a north session of its own');
    const up = collect(platform, '/up/#', 3, 5000);
    await publish(gw.client, '/devices/gw-1/events', '{"cpu":12}', { qos: 1 });
    await publish(gw.client, '/devices/gw-1/events/health', '{"ok":true}', { qos: 1 });
    await publish(gw.client, '/devices/gw-1/state', '{"fw":"1.2"}', { qos: 1 });
    const got = (await up).map((m) => [m.topic, JSON.parse(m.payload.toString())]);
    assert.deepEqual(got.sort(), [
      [`/up/${SECRET}/id/gw-1`, { cpu: 12 }],
      [`/up/${SECRET}/id/gw-1`, { fw: '1.2' }],
      [`/up/${SECRET}/id/gw-1/health`, { ok: true }],
    ]);
    const granted = await subscribe(gw.client, ['/devices/gw-1/config', '/devices/gw-1/commands/#'], {
      qos: 1,
    });
    assert.deepEqual(
      granted.map((g) => [g.topic, g.qos]),
      [
        ['/devices/gw-1/config', 1],
        ['/devices/gw-1/commands/#', 1],
      ],
    );
    const down = collect(gw.client, '/devices/gw-1/+/#', 2, 5000);
    await publish(platform, `/down/${SECRET}/id/gw-1`, '{"interval":30}', { qos: 1 });
    await publish(platform, `/down/${SECRET}/id/gw-1/reboot`, '{"now":true}', { qos: 1 });
    assert.deepEqual((await down).map((m) => [m.topic, m.payload.toString()]).sort(), [
      ['/devices/gw-1/commands/reboot', '{"now":true}'],
      ['/devices/gw-1/config', '{"interval":30}'],
    ]);
    // Its attached devices go on as before, beside it.
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
    const devUp = collect(platform, `/up/${SECRET}/id/dev-1`, 1, 5000);
    await publish(gw.client, '/devices/dev-1/events', '{"t":1}', { qos: 1 });
    assert.deepEqual(JSON.parse((await devUp)[0]?.payload.toString() ?? ''), { t: 1 });
    assert.equal(gw.errors.length, 0, 'no errors reported to the gateway');
  });

  it('refuses the own topics of a gateway without a north record, and still serves its devices', async () => {
    const gw = await connectGateway(proxy.url, 'gw-2', gw2.privateKey);
    clients.push(gw.client);
    await publish(gw.client, '/devices/gw-2/events', '{"cpu":99}', { qos: 0 });
    const e = await gw.errorFor('GATEWAY_DEVICE_NOT_FOUND', 'gw-2');
    assert.equal(e.topic, '/devices/gw-2/events');
    // MQTT.js rejects a SUBACK with a failure code; the SUBACK itself says what was granted.
    const refused = await subscribe(gw.client, '/devices/gw-2/config', { qos: 1 }).then(
      () => undefined,
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
    assert.deepEqual(refused, [0x80], 'its own config is refused');
    const text = await scrape(proxy);
    assert.equal(
      metricValue(text, 'mqtt_proxy_gateway_errors_total', 'type="GATEWAY_NO_NORTH_IDENTITY"'),
      2,
      'counted under their own reason',
    );
    assert.equal(
      logs
        .text()
        .split('\n')
        .filter((l) => l.includes('its record has no north credentials')).length,
      1,
      'logged once for the connection',
    );
    assert.equal(northConnected(broker, 'gw-2'), false);
    await publish(gw.client, '/devices/dev-2/attach', '', { qos: 1 });
    const up = collect(platform, `/up/${SECRET}/id/dev-2`, 1, 5000);
    await publish(gw.client, '/devices/dev-2/events', '{"t":2}', { qos: 1 });
    assert.deepEqual(JSON.parse((await up)[0]?.payload.toString() ?? ''), { t: 2 });
  });

  /** dev-d connecting directly (not through a gateway), with its own JWT. */
  const connectDirect = async (): Promise<MqttClient> => {
    const dev = await connectClient(proxy.url, {
      clientId: clientIdFor('dev-d'),
      username: 'unused',
      password: cbJwt(devKey.privateKey),
      protocolVersion: 4,
    });
    clients.push(dev);
    return dev;
  };

  it('serves a ClearBlade device connecting directly as a device: uplinks north, config back', async () => {
    const dev = await connectDirect();
    assert.equal(northConnected(broker, 'dev-d'), true, 'a north session of its own, at once');
    const up = collect(platform, `/up/${SECRET}/id/dev-d/#`, 2, 5000);
    await publish(dev, '/devices/dev-d/events', '{"temp":20}', { qos: 1 });
    await publish(dev, '/devices/dev-d/state', '{"on":true}', { qos: 1 });
    assert.deepEqual((await up).map((m) => [m.topic, m.payload.toString()]).sort(), [
      [`/up/${SECRET}/id/dev-d`, '{"on":true}'],
      [`/up/${SECRET}/id/dev-d`, '{"temp":20}'],
    ]);
    const granted = await subscribe(dev, '/devices/dev-d/config', { qos: 1 });
    assert.equal(granted[0]?.qos, 1);
    const down = collect(dev, '/devices/dev-d/config', 1, 5000);
    await publish(platform, `/down/${SECRET}/id/dev-d`, '{"interval":5}', { qos: 1 });
    assert.equal((await down)[0]?.payload.toString(), '{"interval":5}');
  });

  it('closes a device connecting directly that sends a gateway control message (attach, detach)', async () => {
    // ClearBlade "accepts control messages only from gateways; if another type of device
    // attempts to send a control message, ClearBlade IoT Core closes the connection".
    const closes = async () =>
      metricValue(await scrape(proxy), 'mqtt_proxy_connection_closes_total', 'reason="not_a_gateway"');
    for (const topic of ['/devices/dev-d/attach', '/devices/dev-1/detach']) {
      const before = await closes();
      const dev = await connectDirect();
      const closed = waitClosed(dev);
      dev.publish(topic, '{}', { qos: 1 });
      await closed;
      assert.equal(await closes(), before + 1, `the close for ${topic} counted as not_a_gateway`);
    }
  });

  it("reads a direct device's CONNECT split across writes, with a PUBLISH right behind it, once", async () => {
    const raw = await rawConnect(Number(new URL(proxy.url).port));
    const connect = mqtt.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: clientIdFor('dev-d'),
      username: 'unused',
      password: Buffer.from(cbJwt(devKey.privateKey)),
      clean: true,
      keepalive: 30,
    });
    const event = mqtt.generate({
      cmd: 'publish',
      topic: '/devices/dev-d/events',
      payload: Buffer.from('{"raw":1}'),
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
    });
    const up = collect(platform, `/up/${SECRET}/id/dev-d`, 1, 5000);
    try {
      raw.write(connect.subarray(0, 10));
      await new Promise((r) => setTimeout(r, 50));
      raw.write(Buffer.concat([connect.subarray(10), event]));
      const connack = await raw.nextPacket();
      assert.equal(connack.cmd, 'connack');
      assert.equal(connack.cmd === 'connack' ? connack.returnCode : -1, 0);
      const puback = await raw.nextPacket();
      assert.deepEqual([puback.cmd, puback.messageId], ['puback', 7]);
      assert.equal((await up)[0]?.payload.toString(), '{"raw":1}');
    } finally {
      raw.destroy();
    }
  });

  it('closes a client on the route whose first packet is not a CONNECT', async () => {
    const raw = await rawConnect(Number(new URL(proxy.url).port));
    const p: IPublishPacket = {
      cmd: 'publish',
      topic: '/devices/gw-1/events',
      payload: Buffer.from('{}'),
      qos: 0,
      retain: false,
      dup: false,
    };
    raw.send(p);
    await raw.closed(5000);
    assert.equal(raw.packets.length, 0, 'nothing answered');
  });

  it('lets a device that is not a gateway attach nobody: the attach closes its connection', async () => {
    const dev = await connectDirect();
    const stray = gather(platform, `/up/${SECRET}/id/dev-j/#`, 500);
    const closed = waitClosed(dev);
    // dev-j's valid JWT would attach it through a gateway; from a device it attaches nothing.
    dev.publish('/devices/dev-j/attach', JSON.stringify({ authorization: cbJwt(jKey.privateKey) }), {
      qos: 0,
    });
    dev.publish('/devices/dev-j/events', '{"t":"j"}', { qos: 0 });
    await closed;
    assert.deepEqual(await stray, [], 'nothing went north as dev-j');
    assert.equal(northConnected(broker, 'dev-j'), false, 'dev-j never got a north session');
  });
});
