/**
 * foxtrackr trackers as the south side (route foxtrackr-to-evrythng): envelopes published
 * on foxtrackr/{deviceId}/V3.0/{type} become EVRYTHNG Thng properties with the tracker's
 * millisecond timestamps; property updates from EVRYTHNG come back to a subscribed tracker
 * as envelopes. EVRYTHNG is mosquitto with one API key and ACLs on the Thng's topics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { startRouteProxy, tempDir, writeCredentials } from './kit.js';

const API_KEY = 'evt-key-foxtrackr-0123456789';
const FOX_PW = 'fox-password-777';
const envelope = (field: string, body: unknown, timeMs: number): string =>
  JSON.stringify({ messageType: 1, deviceId: '777', version: 3, timeMs, [field]: body });

describe('foxtrackr trackers → EVRYTHNG', () => {
  let evt: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  let tracker: MqttClient;
  const tmp = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    evt = await startEvrythngBroker({ apiKey: API_KEY, thngs: ['UXYZ777'] });
    const creds = writeCredentials(tmp.dir, [
      {
        south: { username: 'tracker-777', password: FOX_PW, deviceId: '777' },
        north: { thngId: 'UXYZ777', apiKey: API_KEY },
      },
    ]);
    proxy = await startRouteProxy('foxtrackr-to-evrythng', evt.url, creds);
    platform = await connectClient(evt.url, { ...evt.platform, clientId: 'evt-platform' });
    clients.push(platform);
    await subscribe(platform, '/thngs/#', { qos: 1 });
    tracker = await connectClient(proxy.url, {
      clientId: 'id-tracker-01',
      username: 'tracker-777',
      password: FOX_PW,
    });
    clients.push(tracker);
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await evt?.stop();
    tmp.cleanup();
  });

  it('an envelope becomes a Thng property update with the tracker time in ms', async () => {
    const up = nextMessage(platform, '/thngs/UXYZ777/properties/battery', 5000);
    await publish(tracker, 'foxtrackr/777/V3.0/bat', envelope('battery', { level: 87 }, 1700000000123), {
      qos: 1,
    });
    const m = await up;
    assert.deepEqual(JSON.parse(m.payload.toString()), [{ value: { level: 87 }, timestamp: 1700000000123 }]);
    const t = nextMessage(platform, '/thngs/UXYZ777/properties/temperature', 5000);
    await publish(tracker, 'foxtrackr/777/V3.0/temp', envelope('temperature', { c: 4.5 }, 1700000001000));
    assert.deepEqual(JSON.parse((await t).payload.toString()), [
      { value: { c: 4.5 }, timestamp: 1700000001000 },
    ]);
  });

  it("drops another tracker's topic and an envelope without its body", async () => {
    const seen = gather(platform, '/thngs/#', 1000);
    await publish(tracker, 'foxtrackr/778/V3.0/bat', envelope('battery', { level: 1 }, 1), { qos: 1 });
    await publish(tracker, 'foxtrackr/777/V3.0/bat', JSON.stringify({ deviceId: '777', timeMs: 1 }), {
      qos: 1,
    });
    assert.deepEqual(await seen, []);
    assert.equal(tracker.connected, true);
  });

  it('a property update from EVRYTHNG reaches the subscribed tracker as an envelope (wildcard filter)', async () => {
    const grants = await subscribe(tracker, 'foxtrackr/777/V3.0/+', { qos: 1 });
    assert.equal(grants[0]?.qos, 1);
    const down = nextMessage(tracker, 'foxtrackr/777/V3.0/temp', 5000);
    await publish(
      platform,
      '/thngs/UXYZ777/properties/temp',
      JSON.stringify([{ value: { c: 3 }, timestamp: 1700000002000 }]),
      {
        qos: 1,
      },
    );
    const m = await down;
    assert.deepEqual(JSON.parse(m.payload.toString()), {
      version: 3,
      deviceId: '777',
      timeMs: 1700000002000,
      temperature: { c: 3 },
    });
  });

  it('refuses a wrong foxtrackr password', async () => {
    const r = await tryConnect(proxy.url, { clientId: 'id-x-01', username: 'tracker-777', password: 'nope' });
    assert.equal(r.client.connected, false);
    assert.equal(r.connack?.returnCode, 4);
  });
});
