/**
 * A mixed fleet behind ClearBlade gateways: 100 Connector devices and 100 akenza devices.
 *
 * A gateway identity is one MQTT client id at the platform, so it can only be held by one
 * connection: two proxy processes sharing one identity would take the connection from each
 * other. A proxy process runs one route (one south dialect), so a mixed-dialect fleet is
 * one proxy process per south dialect, each with its own gateway identity (here gw-conn,
 * RS256, and gw-akz, ES256), all on the same ClearBlade registry.
 *
 * In the middle of the traffic both gateways' connections are closed by the platform as if
 * their JWTs had expired: every device stays connected, nothing it published is lost, every
 * device is attached again, and every command reaches the right device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  publish,
  subscribe,
  withTimeout,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { ecKey, rsaKey, startRouteProxy, tempDir, writeCredentials } from './kit.js';

const PER_DIALECT = 100;
const MESSAGES = 6;
const SECRET = 'akzFleetSecret0123456789';
const gwConn = rsaKey();
const gwAkz = ecKey();
const conn = Array.from({ length: PER_DIALECT }, (_, i) => `c-${i}`);
const akz = Array.from({ length: PER_DIALECT }, (_, i) => `a-${i}`);
const tokenOf = (id: string): string => `tok-${id}-00000000000000000000`;

async function inBatches<T, R>(items: T[], size: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(f))));
  return out;
}

describe(`a mixed fleet of ${2 * PER_DIALECT} devices behind ClearBlade gateways`, () => {
  let cb: ClearBladePlatform;
  let connProxy: TestProxy;
  let akzProxy: TestProxy;
  const tmp = tempDir();
  const devices = new Map<string, MqttClient>();
  const received = new Map<string, string[]>();

  before(async () => {
    cb = await startClearBladePlatform({
      project: 'my-project',
      registry: 'my-registry',
      gateways: [
        { id: 'gw-conn', publicKey: gwConn.publicKey },
        { id: 'gw-akz', publicKey: gwAkz.publicKey },
      ],
      devices: [
        ...conn.map((id) => ({ id, boundTo: ['gw-conn'] })),
        ...akz.map((id) => ({ id, boundTo: ['gw-akz'] })),
      ],
    });
    const connCreds = writeCredentials(
      tmp.dir,
      conn.map((id) => ({
        south: { deviceId: id, token: tokenOf(id) },
        north: { gatewayId: 'gw-conn', privateKey: gwConn.pem },
      })),
      'connector.yaml',
    );
    const akzCreds = writeCredentials(
      tmp.dir,
      akz.map((id) => ({
        south: { deviceId: id, connectorId: 'akz-conn', secret: SECRET },
        north: { gatewayId: 'gw-akz', privateKey: gwAkz.pem },
      })),
      'akenza.yaml',
    );
    connProxy = await startRouteProxy('connector-to-clearblade', cb.url, connCreds);
    akzProxy = await startRouteProxy('akenza-to-clearblade', cb.url, akzCreds);
    await inBatches(conn, 50, async (id) => {
      const c = await connectClient(connProxy.url, { clientId: id, username: id, password: tokenOf(id) });
      devices.set(id, c);
    });
    await inBatches(akz, 50, async (id) => {
      const c = await connectClient(akzProxy.url, { clientId: id, username: 'akz-conn', password: SECRET });
      await subscribe(c, `/down/${SECRET}/id/${id}/#`, { qos: 1 });
      devices.set(id, c);
    });
    for (const [id, c] of devices) {
      received.set(id, []);
      c.on('message', (topic, payload) => received.get(id)?.push(`${topic} ${payload.toString()}`));
    }
  });

  after(async () => {
    await closeAll(devices.values());
    await Promise.all([connProxy?.close(500), akzProxy?.close(500)]);
    await cb?.stop();
    tmp.cleanup();
  });

  it('attaches every device on one connection per gateway identity', () => {
    assert.deepEqual(cb.attached('gw-conn'), [...conn].sort());
    assert.deepEqual(cb.attached('gw-akz'), [...akz].sort());
    assert.equal(connProxy.connectionCount() + akzProxy.connectionCount(), 2 * PER_DIALECT);
  });

  it('loses no uplink when both gateways are cut in the middle (as on JWT expiry)', async () => {
    const send = (id: string, n: number): Promise<unknown> => {
      const c = devices.get(id) as MqttClient;
      return id.startsWith('c-')
        ? publish(c, '$resource', JSON.stringify({ seq: n, dev: id }), { qos: 1 }, 30_000)
        : publish(
            c,
            `/up/${SECRET}/id/${id}/alerts/critical`,
            JSON.stringify({ seq: n }),
            { qos: 1 },
            30_000,
          );
    };
    const all = [...conn, ...akz];
    for (let n = 0; n < MESSAGES; n++) {
      if (n === MESSAGES / 2) {
        assert.equal(cb.expire('gw-conn'), 1);
        assert.equal(cb.expire('gw-akz'), 1);
      }
      await withTimeout(Promise.all(all.map((id) => send(id, n))), 60_000, `round ${n} acknowledged`);
    }
    assert.deepEqual([...new Set(cb.expired)].sort(), ['gw-akz', 'gw-conn']);
    for (const id of all) {
      const seqs = new Set(cb.telemetry(id).map((t) => (JSON.parse(t.payload) as { seq: number }).seq));
      assert.equal(seqs.size, MESSAGES, `${id}: ${[...seqs].join(',')}`);
    }
    for (const id of akz) assert.ok(cb.telemetry(id).every((t) => t.subfolder === 'alerts_critical'));
    for (const c of devices.values()) assert.equal(c.connected, true, 'no device was dropped');
    assert.deepEqual(cb.attached('gw-conn'), [...conn].sort());
    assert.deepEqual(cb.attached('gw-akz'), [...akz].sort());
  });

  it('delivers every command and config to the device it names, in its own dialect', async () => {
    for (const id of conn) assert.equal(cb.sendCommand(id, JSON.stringify({ cmd: `for-${id}` })), true);
    for (const id of akz)
      assert.equal(cb.sendCommand(id, JSON.stringify({ cmd: `for-${id}` }), 'reboot'), true);
    cb.sendConfig('a-7', '{"interval":30}');
    const expected = (id: string): string =>
      id.startsWith('c-') ? `$resource/cmd for-${id}` : `/down/${SECRET}/id/${id}/reboot {"cmd":"for-${id}"}`;
    await cb.waitFor(
      () => [...devices.keys()].every((id) => received.get(id)?.includes(expected(id))),
      20_000,
      'every command delivered',
    );
    await cb.waitFor(() => (received.get('a-7') ?? []).some((m) => m.includes('"interval":30')), 5000);
    for (const [id, got] of received) {
      const mine = id === 'a-7' ? got.filter((m) => !m.includes('"interval"')) : got;
      assert.deepEqual(mine, [expected(id)], `${id} got only its own command`);
    }
    assert.deepEqual(
      received.get('a-7')?.filter((m) => m.includes('interval')),
      [`/down/${SECRET}/id/a-7 {"interval":30}`],
    );
  });
});
