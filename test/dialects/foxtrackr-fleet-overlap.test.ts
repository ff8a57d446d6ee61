/**
 * A foxtrackr application account-wide on EVRYTHNG (mosquitto), where its filters and the north
 * session's disagree: overlapping filters on one connection (`foxtrackr/+/V3.0/bat` and
 * `foxtrackr/777/V3.0/bat` both need `/thngs/UXYZ777/properties/battery`, which the north session
 * holds once, at one QoS), and a filter the persistent north session holds from an earlier
 * connection.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  closeClient,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { startRouteProxy, tempDir, until } from './kit.js';

const API_KEY = 'evt-overlap-key-0123456789';
const LOGIN = { username: 'fleet-app', password: 'fox-overlap-password' };
const update = (body: unknown, timestamp: number) => JSON.stringify([{ value: body, timestamp }]);

describe('foxtrackr account-wide on EVRYTHNG: overlapping filters, filters of an earlier connection', () => {
  let evt: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  const tmp = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    evt = await startEvrythngBroker({ apiKey: API_KEY, thngs: ['UXYZ777', 'UXYZ778'] });
    const creds = join(tmp.dir, 'fleet.yaml');
    writeFileSync(
      creds,
      [
        `- south: ${JSON.stringify(LOGIN)}`,
        `  north: { apiKey: "${API_KEY}" }`,
        '  devices:',
        '    - { deviceId: "777", thngId: "UXYZ777" }',
        '    - { deviceId: "778", thngId: "UXYZ778" }',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    proxy = await startRouteProxy('foxtrackr-to-evrythng', evt.url, creds);
    platform = await connectClient(evt.url, { ...evt.platform, clientId: 'evt-platform' });
    clients.push(platform);
    await subscribe(platform, '/thngs/#', { qos: 1 });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await evt?.stop();
    tmp.cleanup();
  });

  const app = async (clientId: string): Promise<MqttClient> => {
    const c = await connectClient(proxy.url, { ...LOGIN, clientId, clean: false, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };

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
