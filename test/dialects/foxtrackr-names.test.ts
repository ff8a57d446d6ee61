/**
 * foxtrackr property names (issue 5): a tracker's foxtrackr/{id}/V3.0/bat is the property
 * `battery`, temp is `temperature` (the body field's name), both ways, through the shipped
 * route foxtrackr-to-evrythng with real MQTT.js clients and mosquitto_pub; EVRYTHNG is
 * mosquitto with one API key and ACLs on the Thng's topics. A type without an alias keeps its
 * name.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type MosquittoPlatform, startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  mosquittoPub,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { startRouteProxy, tempDir, writeCredentials } from './kit.js';

const API_KEY = 'evt-key-foxtrackr-names-0123456789';
const FOX_PW = 'fox-password-names-777';
const THNG = 'UNAMES777';
const envelope = (field: string, body: unknown, timeMs: number): string =>
  JSON.stringify({ messageType: 1, deviceId: '777', version: 3, timeMs, [field]: body });

describe('foxtrackr types are EVRYTHNG properties named by their body field', () => {
  let evt: MosquittoPlatform;
  let proxy: TestProxy;
  let platform: MqttClient;
  let tracker: MqttClient;
  const tmp = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    evt = await startEvrythngBroker({ apiKey: API_KEY, thngs: [THNG] });
    const creds = writeCredentials(tmp.dir, [
      {
        south: { username: 'tracker-777', password: FOX_PW, deviceId: '777' },
        north: { thngId: THNG, apiKey: API_KEY },
      },
    ]);
    proxy = await startRouteProxy('foxtrackr-to-evrythng', evt.url, creds);
    platform = await connectClient(evt.url, { ...evt.platform, clientId: 'evt-platform-names' });
    clients.push(platform);
    await subscribe(platform, '/thngs/#', { qos: 1 });
    tracker = await connectClient(proxy.url, {
      clientId: 'id-names-01',
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

  it('bat becomes the battery property, temp the temperature property, gps stays gps', async () => {
    const battery = nextMessage(platform, `/thngs/${THNG}/properties/battery`, 5000);
    await publish(tracker, 'foxtrackr/777/V3.0/bat', envelope('battery', { level: 87 }, 1700000000123), {
      qos: 1,
    });
    assert.deepEqual(JSON.parse((await battery).payload.toString()), [
      { value: { level: 87 }, timestamp: 1700000000123 },
    ]);
    const gps = nextMessage(platform, `/thngs/${THNG}/properties/gps`, 5000);
    await publish(tracker, 'foxtrackr/777/V3.0/gps', envelope('gps', { lat: 1 }, 1700000002000), { qos: 1 });
    assert.deepEqual(JSON.parse((await gps).payload.toString()), [
      { value: { lat: 1 }, timestamp: 1700000002000 },
    ]);
    // Another client, last (one north connection per tracker: it takes over): mosquitto_pub.
    const temperature = nextMessage(platform, `/thngs/${THNG}/properties/temperature`, 5000);
    const r = await mosquittoPub({
      url: proxy.url,
      topic: 'foxtrackr/777/V3.0/temp',
      message: envelope('temperature', { c: 4.5 }, 1700000001000),
      qos: 1,
      extra: ['-i', 'id-names-02', '-u', 'tracker-777', '-P', FOX_PW],
    });
    assert.equal(r.code, 0, 'mosquitto_pub through the proxy');
    assert.deepEqual(JSON.parse((await temperature).payload.toString()), [
      { value: { c: 4.5 }, timestamp: 1700000001000 },
    ]);
  });

  it('a battery update from EVRYTHNG reaches a tracker subscribed to its bat topic, as a battery envelope', async () => {
    const app = await connectClient(proxy.url, {
      clientId: 'id-names-03',
      username: 'tracker-777',
      password: FOX_PW,
    });
    clients.push(app);
    // An exact filter: the proxy subscribes north to /thngs/{thngId}/properties/battery.
    const grants = await subscribe(app, 'foxtrackr/777/V3.0/bat', { qos: 1 });
    assert.equal(grants[0]?.qos, 1);
    const down = nextMessage(app, 'foxtrackr/777/V3.0/bat', 5000);
    await publish(
      platform,
      `/thngs/${THNG}/properties/battery`,
      JSON.stringify([{ value: { level: 40 }, timestamp: 1700000003000 }]),
      { qos: 1 },
    );
    assert.deepEqual(JSON.parse((await down).payload.toString()), {
      version: 3,
      deviceId: '777',
      timeMs: 1700000003000,
      battery: { level: 40 },
    });
  });
});
