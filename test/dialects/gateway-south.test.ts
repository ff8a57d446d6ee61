/**
 * ClearBlade-style gateways connecting SOUTH (route clearblade-gateway-to-akenza): an MQTT.js
 * client is the gateway (JWT signed with its test key), mosquitto configured as akenza
 * (uplink-secret scheme) is the north. Each attached device gets its own north session,
 * named by its device id; mosquitto's log shows those sessions come and go.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startAkenzaSecretBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  publish,
  subscribe,
  tryConnect,
  withTimeout,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  cbJwt,
  clientIdFor,
  connectGateway,
  northConnected,
  northGone,
  publicPem,
  type TestGateway,
} from './gateway-south-kit.js';
import {
  captureLogs,
  ecKey,
  rsaKey,
  scrape,
  startRouteProxy,
  tempDir,
  until,
  writeCredentials,
} from './kit.js';

const SECRET = 'akzGwSouth5e1d9c3b7a2f4e6d';
const NORTH = { connectorId: 'conn-1', secret: SECRET };

describe('ClearBlade gateways south → akenza (uplink secret) on mosquitto', () => {
  const gw1 = ecKey();
  const gw2 = rsaKey();
  const devKey = ecKey();
  const dev9Key = ecKey();
  const tmp = tempDir('mdp-gw-south-');
  const logs = captureLogs();
  const clients: MqttClient[] = [];
  const jwts: string[] = [];
  let broker: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  let gw: TestGateway;
  let gwPort: number | undefined;

  before(async () => {
    broker = await startAkenzaSecretBroker({ connectors: [{ id: 'conn-1', secret: SECRET }] });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gw1.publicKey) }, north: {} },
      { south: { deviceId: 'gw-2', publicKey: publicPem(gw2.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: NORTH },
      { south: { deviceId: 'dev-2', gateway: 'gw-1' }, north: NORTH },
      {
        south: { deviceId: 'dev-9', gateway: 'gw-2', publicKey: publicPem(dev9Key.publicKey) },
        north: NORTH,
      },
      // Bound to no gateway: attached only with a JWT of its own.
      { south: { deviceId: 'dev-j', publicKey: publicPem(devKey.publicKey) }, north: NORTH },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', broker.url, creds, { logger: logs.logger });
    platform = await connectClient(broker.url, { ...broker.platform, clientId: 'akenza-platform' });
    clients.push(platform);
    await subscribe(platform, '/up/#', { qos: 1 });
    gw = await connectGateway(proxy.url, 'gw-1', gw1.privateKey);
    gwPort = (gw.client.stream as net.Socket).localPort;
    clients.push(gw.client);
    jwts.push(gw.jwt);
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
    tmp.cleanup();
  });

  it('attaches two bound devices: each gets its own north session and its events arrive translated', async () => {
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
    await publish(gw.client, '/devices/dev-2/attach', '{}', { qos: 1 });
    // Each attach was acknowledged once the device's north session was up.
    await until(() => northConnected(broker, 'dev-1'), 5000, 'dev-1 to have a north session of its own');
    await until(() => northConnected(broker, 'dev-2'), 5000, 'dev-2 to have a north session of its own');
    assert.equal(northConnected(broker, 'gw-1'), false, 'the gateway itself has no north session');
    // Attaching an attached device is acknowledged again.
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
    const up = collect(platform, '/up/#', 2, 5000);
    await publish(gw.client, '/devices/dev-1/events', '{"temp":21.5}', { qos: 1 });
    await publish(gw.client, '/devices/dev-2/events/alerts/critical', '{"door":"open"}', { qos: 1 });
    const got = (await up).map((m) => [m.topic, JSON.parse(m.payload.toString())]);
    assert.deepEqual(got.sort(), [
      [`/up/${SECRET}/id/dev-1`, { temp: 21.5 }],
      [`/up/${SECRET}/id/dev-2/alerts/critical`, { door: 'open' }],
    ]);
  });

  it('acknowledges QoS 1 uplinks end to end, each to its own device, interleaved', async () => {
    const n = 20;
    const up = collect(platform, '/up/#', n, 10_000);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        publish(gw.client, `/devices/dev-${(i % 2) + 1}/state`, JSON.stringify({ seq: i }), { qos: 1 }),
      ),
    );
    const got = await up;
    for (const m of got) {
      const { seq } = JSON.parse(m.payload.toString()) as { seq: number };
      assert.equal(m.topic, `/up/${SECRET}/id/dev-${(seq % 2) + 1}`, `seq ${seq} went north as its device`);
    }
    assert.deepEqual(
      got.map((m) => (JSON.parse(m.payload.toString()) as { seq: number }).seq).sort((a, b) => a - b),
      [...Array(n).keys()],
    );
  });

  it('delivers a downlink for one device on its commands or config topic, never to the other', async () => {
    // ClearBlade's QoS: commands 0, config 1.
    const granted = await withTimeout(
      gw.client.subscribeAsync({
        '/devices/dev-1/commands/#': { qos: 0 },
        '/devices/dev-2/commands/#': { qos: 0 },
        '/devices/dev-1/config': { qos: 1 },
        '/devices/dev-2/config': { qos: 1 },
      }),
      5000,
      'SUBACK',
    );
    assert.deepEqual(
      granted.map((g) => [g.topic, g.qos]),
      [
        ['/devices/dev-1/commands/#', 0],
        ['/devices/dev-2/commands/#', 0],
        ['/devices/dev-1/config', 1],
        ['/devices/dev-2/config', 1],
      ],
    );
    const down = collect(gw.client, '/devices/+/+/#', 4, 5000);
    await publish(platform, `/down/${SECRET}/id/dev-1/reboot`, '{"delay":5}', { qos: 1 });
    await publish(platform, `/down/${SECRET}/id/dev-1`, '{"interval":60}', { qos: 1 });
    await publish(platform, `/down/${SECRET}/id/dev-2/blink`, '{"times":3}', { qos: 0 });
    // A downlink topic of several levels is one akenza topic: its levels joined.
    await publish(platform, `/down/${SECRET}/id/dev-2/alerts/critical`, '{"ack":1}', { qos: 0 });
    const got = (await down).map((m) => [m.topic, m.payload.toString()]);
    const extra = await gather(gw.client, '/devices/+/+/#', 300);
    assert.deepEqual([...got, ...extra.map((m) => [m.topic, m.payload.toString()])].sort(), [
      ['/devices/dev-1/commands/reboot', '{"delay":5}'],
      ['/devices/dev-1/config', '{"interval":60}'],
      ['/devices/dev-2/commands/alerts_critical', '{"ack":1}'],
      ['/devices/dev-2/commands/blink', '{"times":3}'],
    ]);
  });

  it('reports an event of an unattached device as GATEWAY_DEVICE_NOT_FOUND', async () => {
    await publish(gw.client, '/devices/dev-x/events', '{"temp":1}', { qos: 0 });
    const e = await gw.errorFor('GATEWAY_DEVICE_NOT_FOUND', 'dev-x');
    assert.equal(e.topic, '/devices/dev-x/events');
    assert.equal(northConnected(broker, 'dev-x'), false);
  });

  it("refuses to attach another gateway's device, or an unbound device without a JWT", async () => {
    // No PUBACK comes for a refused attach (as on ClearBlade): these publishes stay unanswered.
    void gw.client.publishAsync('/devices/dev-9/attach', '', { qos: 1 }).catch(() => undefined);
    void gw.client.publishAsync('/devices/dev-j/attach', '{}', { qos: 1 }).catch(() => undefined);
    await gw.errorFor('GATEWAY_ATTACHMENT_ERROR', 'dev-9');
    await gw.errorFor('GATEWAY_ATTACHMENT_ERROR', 'dev-j');
    // Even with a valid JWT of its own, a device bound to gw-2 is not gw-1's.
    const dev9Jwt = cbJwt(dev9Key.privateKey);
    jwts.push(dev9Jwt);
    void gw.client
      .publishAsync('/devices/dev-9/attach', JSON.stringify({ authorization: dev9Jwt }), { qos: 1 })
      .catch(() => undefined);
    await until(
      () =>
        gw.errors.filter((e) => e.error_type === 'GATEWAY_ATTACHMENT_ERROR' && e.device_id === 'dev-9')
          .length >= 2,
      5000,
      "dev-9's JWT attach refused",
    );
    await publish(gw.client, '/devices/dev-9/events', '{"t":1}', { qos: 0 });
    await gw.errorFor('GATEWAY_DEVICE_NOT_FOUND', 'dev-9');
    assert.equal(northConnected(broker, 'dev-9'), false, 'a refused device never reaches north');
    assert.equal(northConnected(broker, 'dev-j'), false);
    // The other gateway attaches its own device.
    const other = await connectGateway(proxy.url, 'gw-2', gw2.privateKey);
    clients.push(other.client);
    jwts.push(other.jwt);
    await publish(other.client, '/devices/dev-9/attach', '', { qos: 1 });
    const up = collect(platform, `/up/${SECRET}/id/dev-9`, 1, 5000);
    await publish(other.client, '/devices/dev-9/events', '{"t":9}', { qos: 1 });
    assert.deepEqual(JSON.parse((await up)[0]?.payload.toString() ?? ''), { t: 9 });
  });

  it('attaches a device by its own JWT (verified with its public key); a forged one is refused', async () => {
    const forged = cbJwt(gw2.privateKey);
    jwts.push(forged);
    void gw.client
      .publishAsync('/devices/dev-j/attach', JSON.stringify({ authorization: forged }), { qos: 1 })
      .catch(() => undefined);
    await until(
      () =>
        gw.errors.filter((e) => e.error_type === 'GATEWAY_ATTACHMENT_ERROR' && e.device_id === 'dev-j')
          .length >= 2,
      5000,
      'the forged JWT refused',
    );
    assert.equal(northConnected(broker, 'dev-j'), false);
    const jwt = cbJwt(devKey.privateKey);
    jwts.push(jwt);
    await publish(gw.client, '/devices/dev-j/attach', JSON.stringify({ authorization: jwt }), { qos: 1 });
    const up = collect(platform, `/up/${SECRET}/id/dev-j`, 1, 5000);
    await publish(gw.client, '/devices/dev-j/events', '{"t":7}', { qos: 1 });
    assert.deepEqual(JSON.parse((await up)[0]?.payload.toString() ?? ''), { t: 7 });
  });

  it("detaches a device: its north session ends, the other's goes on", async () => {
    assert.equal(northGone(broker, 'dev-2'), false);
    await publish(gw.client, '/devices/dev-2/detach', '', { qos: 1 });
    await until(() => northGone(broker, 'dev-2'), 5000, 'north to see dev-2 leave');
    await publish(gw.client, '/devices/dev-2/events', '{"t":2}', { qos: 0 });
    await gw.errorFor('GATEWAY_DEVICE_NOT_FOUND', 'dev-2');
    // Detaching a device that is not attached is acknowledged and ignored.
    await publish(gw.client, '/devices/dev-2/detach', '', { qos: 1 });
    const up = collect(platform, '/up/#', 1, 5000);
    await publish(gw.client, '/devices/dev-1/events', '{"still":true}', { qos: 1 });
    assert.equal((await up)[0]?.topic, `/up/${SECRET}/id/dev-1`);
    assert.equal(northGone(broker, 'dev-1'), false);
  });

  it('refuses a gateway CONNECT with a bad JWT (wrong key, wrong audience, expired)', async () => {
    const bad = [
      cbJwt(gw2.privateKey),
      cbJwt(gw1.privateKey, { aud: 'another-project' }),
      cbJwt(gw1.privateKey, { iat: 1_600_000_000, exp: 1_600_000_600 }),
    ];
    jwts.push(...bad);
    for (const password of bad) {
      const r = await tryConnect(proxy.url, { clientId: clientIdFor('gw-1'), username: 'unused', password });
      assert.equal(r.client.connected, false);
      assert.equal(r.connack?.returnCode, 4, 'CONNACK 4 (bad user name or password)');
    }
    // A device bound to a gateway cannot connect as one, however it signs.
    const r = await tryConnect(proxy.url, {
      clientId: clientIdFor('dev-1'),
      username: 'unused',
      password: cbJwt(gw1.privateKey),
    });
    assert.equal(r.client.connected, false);
    assert.notEqual(r.connack?.returnCode ?? 0x80, 0);
  });

  it("ends every attached device's north session when the gateway leaves", async () => {
    await closeAll([gw.client]);
    await until(
      () => northGone(broker, 'dev-1') && northGone(broker, 'dev-j'),
      5000,
      'north sessions to end',
    );
  });

  it("names an attached device's connection in its log lines by the gateway's ip:port", async () => {
    // The refused attaches above ran a session of each device on gw-1's connection; its
    // "connection refused" line carries the connection it came on.
    const refused = logs.lines().filter((r) => r['msg'] === 'connection refused');
    assert.ok(refused.length > 0, 'a refused attach was logged');
    for (const r of refused) assert.equal(r['conn'], `127.0.0.1:${gwPort}`);
  });

  it('never writes the akenza secret or a JWT to a log line or a metric', async () => {
    const text = await scrape(proxy);
    assert.ok(text.includes('mqtt_proxy_'), 'the scrape is the real exposition');
    assert.ok(logs.lines().length > 0, 'debug logs were captured');
    for (const [where, body] of [
      ['metrics', text],
      ['logs', logs.text()],
    ] as const) {
      for (const s of [SECRET, ...jwts])
        assert.equal(body.includes(s), false, `a secret appears in the ${where}`);
    }
  });
});
