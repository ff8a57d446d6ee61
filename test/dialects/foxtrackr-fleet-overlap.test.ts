/**
 * A foxtrackr application account-wide on EVRYTHNG (mosquitto), where its filters and the north
 * session's disagree: overlapping filters on one connection (`foxtrackr/+/V3.0/bat` and
 * `foxtrackr/777/V3.0/bat` both need `/thngs/UXYZ777/properties/battery`, which the north session
 * holds once, at one QoS), and a filter the persistent north session holds from an earlier
 * connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeClient, gather, type MqttClient, nextMessage, publish, subscribe } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { type FleetRig, startFleetRig } from './fleet-kit.js';
import { until } from './kit.js';

const API_KEY = 'evt-overlap-key-0123456789';
const LOGIN = { username: 'fleet-app', password: 'fox-overlap-password' };
const update = (body: unknown, timestamp: number) => JSON.stringify([{ value: body, timestamp }]);

describe('foxtrackr account-wide on EVRYTHNG: overlapping filters, filters of an earlier connection', () => {
  let rig: FleetRig;
  let proxy: TestProxy;
  let platform: MqttClient;

  before(async () => {
    rig = await startFleetRig({ apiKey: API_KEY, login: LOGIN });
    ({ proxy, platform } = rig);
  });

  after(() => rig?.close());

  const app = (clientId: string): Promise<MqttClient> => rig.app(clientId);

  it('a QoS 2 filter keeps QoS 2 when a QoS 0 filter overlapping it is subscribed after it', async () => {
    const a = await app('id-overlap-01');
    assert.equal((await subscribe(a, 'foxtrackr/777/V3.0/bat', { qos: 2 }))[0]?.qos, 2);
    assert.equal((await subscribe(a, 'foxtrackr/+/V3.0/bat', { qos: 0 }))[0]?.qos, 0);
    const got = nextMessage(a, 'foxtrackr/777/V3.0/bat', 5000);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 62 }, 1700000000062), {
      qos: 2,
    });
    const m = await got;
    assert.equal(JSON.parse(m.payload.toString()).timeMs, 1700000000062);
    // §3.3.5: the highest QoS of the matching subscriptions (a downgraded north one gave 0).
    assert.equal(m.packet.qos, 2);
    await closeClient(a);
  });

  it('an UNSUBSCRIBE after a reconnect removes the filter the earlier connection subscribed', async () => {
    const first = await app('id-overlap-03');
    await subscribe(first, 'foxtrackr/#', { qos: 1 });
    await closeClient(first);
    await until(() => proxy.connectionCount() === 0, 5000, 'the first connection gone');
    // The same application comes back (clean session 0) and no longer wants anything.
    const again = await app('id-overlap-03');
    await again.unsubscribeAsync('foxtrackr/#');
    const none = gather(again, '#', 1000);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 64 }, 1700000000064), {
      qos: 1,
    });
    assert.deepEqual(
      (await none).map((m) => m.topic),
      [],
    );
    await closeClient(again);
  });
});
