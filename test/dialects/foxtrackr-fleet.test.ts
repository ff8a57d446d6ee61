/**
 * foxtrackr as the face shown to applications, account-wide (route foxtrackr-to-evrythng, a
 * record listing many devices for one login): an application written for foxtrackr logs in
 * with its login, subscribes to `foxtrackr/#`, `foxtrackr/+/V3.0/bat`, one device or a group,
 * and gets each Thng's property updates as its device's envelope. EVRYTHNG is mosquitto with
 * one API key (password file, username `authorization`) and ACLs on the two Thngs; a
 * platform-side client publishes the updates there. Clients: MQTT.js and mosquitto_sub run
 * exactly as the foxtrackr documentation shows it (-t 'foxtrackr/#' -i id-given-nn -c -q 2).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeClient,
  collect,
  gather,
  type MqttClient,
  mosquittoSub,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { type FleetRig, startFleetRig } from './fleet-kit.js';
import { captureLogs, scrape, until } from './kit.js';

const API_KEY = 'evt-fleet-key-0123456789';
const FOX_PW = 'fox-fleet-password-42';
const LOGIN = { username: 'fleet-app', password: FOX_PW };
const update = (body: unknown, timestamp: number) => JSON.stringify([{ value: body, timestamp }]);
const envelope = (deviceId: string, field: string, body: unknown, timeMs: number) =>
  JSON.stringify({ messageType: 1, deviceId, version: 3, timeMs, [field]: body });

describe('foxtrackr applications, account-wide, on EVRYTHNG (one login, many devices)', () => {
  let rig: FleetRig;
  let proxy: TestProxy;
  let platform: MqttClient;
  const logs = captureLogs();

  before(async () => {
    rig = await startFleetRig({
      apiKey: API_KEY,
      login: LOGIN,
      groups: '{ my_group: ["778"] }',
      logger: logs.logger,
    });
    ({ proxy, platform } = rig);
  });

  after(() => rig?.close());

  const app = (clientId: string): Promise<MqttClient> => rig.app(clientId);

  it("foxtrackr/# gets both Thngs' updates, each as its device's envelope on its device's topic", async () => {
    const a = await app('id-fleet-01');
    const grants = await subscribe(a, 'foxtrackr/#', { qos: 1 });
    assert.equal(grants[0]?.qos, 1);
    const got = collect(a, 'foxtrackr/#', 2, 5000);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 87 }, 1700000000001), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ778/properties/temperature', update({ c: 4.5 }, 1700000000002), {
      qos: 1,
    });
    const byTopic = Object.fromEntries((await got).map((m) => [m.topic, JSON.parse(m.payload.toString())]));
    assert.deepEqual(byTopic, {
      'foxtrackr/777/V3.0/bat': {
        version: 3,
        deviceId: '777',
        timeMs: 1700000000001,
        battery: { level: 87 },
      },
      'foxtrackr/778/V3.0/temp': {
        version: 3,
        deviceId: '778',
        timeMs: 1700000000002,
        temperature: { c: 4.5 },
      },
    });
    await closeClient(a);
  });

  it('foxtrackr/+/V3.0/bat gets every battery message and nothing else; unsubscribing stops them', async () => {
    const a = await app('id-fleet-02');
    await subscribe(a, 'foxtrackr/+/V3.0/bat', { qos: 1 });
    const got = collect(a, '#', 2, 5000);
    await publish(platform, '/thngs/UXYZ778/properties/temperature', update({ c: 1 }, 1700000000010), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ778/properties/battery', update({ level: 5 }, 1700000000011), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 6 }, 1700000000012), {
      qos: 1,
    });
    const msgs = await got;
    assert.deepEqual(msgs.map((m) => m.topic).sort(), ['foxtrackr/777/V3.0/bat', 'foxtrackr/778/V3.0/bat']);
    assert.equal(
      JSON.parse(msgs.find((m) => m.topic === 'foxtrackr/778/V3.0/bat')?.payload.toString() ?? '').deviceId,
      '778',
    );
    await a.unsubscribeAsync('foxtrackr/+/V3.0/bat');
    const none = gather(a, '#', 800);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 7 }, 1700000000013), {
      qos: 1,
    });
    assert.deepEqual(await none, []);
    await closeClient(a);
  });

  it("a filter covering no device of the login is refused; a group's messages come on the group's topic", async () => {
    const a = await app('id-fleet-03');
    // MQTT.js rejects a SUBACK of failures: its packet holds the codes.
    const refused = await a
      .subscribeAsync(['foxtrackr/999/V3.0/bat', 'foxtrackr/nogroup/#'], { qos: 1 })
      .then(
        (g) => g.map((x) => x.qos),
        (e: { packet?: { granted?: number[] } }) => e.packet?.granted,
      );
    assert.deepEqual(refused, [128, 128]);
    await subscribe(a, 'foxtrackr/my_group/V3.0/bat', { qos: 1 });
    const got = nextMessage(a, '#', 5000);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 1 }, 1700000000020), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ778/properties/battery', update({ level: 2 }, 1700000000021), {
      qos: 1,
    });
    const m = await got;
    assert.equal(m.topic, 'foxtrackr/my_group/V3.0/bat');
    assert.equal(JSON.parse(m.payload.toString()).deviceId, '778');
    await closeClient(a);
  });

  it("a publish to a device's topic goes to its Thng; to a device not in the login, nowhere", async () => {
    const a = await app('id-fleet-04');
    const up = nextMessage(platform, '/thngs/UXYZ778/properties/battery', 5000);
    await publish(a, 'foxtrackr/778/V3.0/bat', envelope('778', 'battery', { level: 33 }, 1700000000030), {
      qos: 1,
    });
    assert.deepEqual(JSON.parse((await up).payload.toString()), [
      { value: { level: 33 }, timestamp: 1700000000030 },
    ]);
    const none = gather(platform, '/thngs/#', 800);
    await publish(a, 'foxtrackr/999/V3.0/bat', envelope('999', 'battery', { level: 1 }, 1), { qos: 1 });
    assert.deepEqual(await none, []);
    assert.equal(a.connected, true);
    await closeClient(a);
  });

  it("its own publish does not come back to an application subscribed to foxtrackr/# (echo), the platform's does", async () => {
    const a = await app('id-fleet-05');
    await subscribe(a, 'foxtrackr/#', { qos: 1 });
    const back = gather(a, '#', 1000);
    const up = nextMessage(platform, '/thngs/UXYZ777/properties/battery', 5000);
    await publish(a, 'foxtrackr/777/V3.0/bat', envelope('777', 'battery', { level: 44 }, 1700000000035), {
      qos: 1,
    });
    await up;
    assert.deepEqual(await back, []);
    const down = nextMessage(a, 'foxtrackr/777/V3.0/bat', 5000);
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 44 }, 1700000000036), {
      qos: 1,
    });
    assert.equal(JSON.parse((await down).payload.toString()).timeMs, 1700000000036);
    const echoes = (await scrape(proxy))
      .split('\n')
      .filter((l) => l.startsWith('mqtt_proxy_messages_total{') && l.includes('reason="echo"'));
    assert.equal(echoes.length, 1, echoes.join('\n'));
    await closeClient(a);
  });

  it('mosquitto_sub as the documentation runs it gets both devices, and nothing is lost while it is offline', async () => {
    const args = ['-i', 'id-given-01', '-c', '-u', LOGIN.username, '-P', LOGIN.password];
    // The earlier tests' applications have gone (each closes its own).
    await until(() => proxy.connectionCount() === 0, 5000, 'the earlier applications gone');
    const first = mosquittoSub({ url: proxy.url, topics: ['foxtrackr/#'], count: 2, qos: 2, extra: args });
    await first.ready;
    await publish(platform, '/thngs/UXYZ777/properties/battery', update({ level: 10 }, 1700000000040), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ778/properties/battery', update({ level: 20 }, 1700000000041), {
      qos: 1,
    });
    const r1 = await first.result;
    assert.equal(r1.code, 0, r1.stderr);
    assert.deepEqual(
      r1.messages
        .map((m) => [m.topic, JSON.parse(m.payload).deviceId, JSON.parse(m.payload).battery.level])
        .sort(),
      [
        ['foxtrackr/777/V3.0/bat', '777', 10],
        ['foxtrackr/778/V3.0/bat', '778', 20],
      ],
    );
    // Offline (clean session 0 kept north): two updates, then the same client id comes back.
    await until(() => proxy.connectionCount() === 0, 5000, 'mosquitto_sub gone');
    await publish(platform, '/thngs/UXYZ778/properties/temperature', update({ c: 9 }, 1700000000042), {
      qos: 1,
    });
    await publish(platform, '/thngs/UXYZ777/properties/temperature', update({ c: 8 }, 1700000000043), {
      qos: 1,
    });
    const again = mosquittoSub({ url: proxy.url, topics: ['foxtrackr/#'], count: 2, qos: 2, extra: args });
    const r2 = await again.result;
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(
      r2.messages
        .map((m) => [m.topic, JSON.parse(m.payload).deviceId, JSON.parse(m.payload).temperature.c])
        .sort(),
      [
        ['foxtrackr/777/V3.0/temp', '777', 8],
        ['foxtrackr/778/V3.0/temp', '778', 9],
      ],
    );
  });

  it('messages are counted per route and rule as for single-device sessions; the password and the API key appear in no log line and no metric', async () => {
    const metrics = await scrape(proxy);
    const counted = (direction: string, outcome: string) =>
      metrics
        .split('\n')
        .filter(
          (l) =>
            l.startsWith('mqtt_proxy_messages_total{') &&
            l.includes('route="foxtrackr-to-evrythng"') &&
            l.includes(`direction="${direction}"`) &&
            l.includes(`outcome="${outcome}"`),
        )
        .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    assert.equal(counted('downlink', 'translated'), 10, metrics);
    assert.equal(counted('uplink', 'translated'), 2);
    assert.ok(
      !/deviceId|UXYZ77|"777"/.test(
        metrics
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .join('\n'),
      ),
    );
    const text = logs.text() + metrics;
    assert.ok(text.length > 0);
    assert.ok(!text.includes(FOX_PW), 'no password');
    assert.ok(!text.includes(API_KEY), 'no API key');
  });
});
