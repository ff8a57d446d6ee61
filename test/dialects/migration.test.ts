/**
 * Migration scenario: 50 Connector devices, unchanged, moved behind the proxy onto an
 * EVRYTHNG-like north (mosquitto with a password file and ACL). They activate themselves,
 * publish values, objects and batches, receive downlinks, go offline while the platform
 * changes their resources, and come back. Nothing may be lost and nothing may cross devices.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  waitClosed,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  API_KEY,
  type Broker,
  type MappingsDir,
  mappingsDir,
  platformClient,
  provisionRoute,
  proxyFor,
  startEvrythngNorth,
  type TempStore,
  tempStore,
} from './connector-env.js';

const N = 50;
const ids = Array.from({ length: N }, (_, i) => `meter-${String(i).padStart(3, '0')}`);
const indexOf = (thngOrDevice: string): number => Number(thngOrDevice.slice(-3));

/** Runs fn over items with at most `width` at a time. */
async function pooled<T, R>(
  items: readonly T[],
  width: number,
  fn: (t: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let guard = 0; guard < items.length && next < items.length; guard++) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

interface Point {
  thng: string;
  key: string;
  value: unknown;
  timestamp: number;
}

describe('migration: 50 Connector devices onto an EVRYTHNG-like platform', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  let platform: MqttClient;
  const tokens = new Map<string, string>();
  let devices: MqttClient[] = [];
  const points: Point[] = [];

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    mappings = mappingsDir({ 'routes/test-migration.yaml': provisionRoute('test-migration', 'token') });
    st = tempStore();
    proxy = await proxyFor(north, mappings, 'test-migration', st.store);
    platform = await platformClient(north);
    await subscribe(platform, '/thngs/+/properties/+', { qos: 1 });
    platform.on('message', (topic, payload) => {
      const [, , thng, , key] = topic.split('/');
      for (const p of JSON.parse(payload.toString()) as Array<{ value: unknown; timestamp: number }>)
        points.push({ thng: thng as string, key: key as string, value: p.value, timestamp: p.timestamp });
    });
  });

  after(async () => {
    await closeAll([...devices, platform]);
    await proxy?.close();
    await st?.cleanup();
    await north?.stop();
    mappings?.cleanup();
  });

  const connectDevice = (id: string) =>
    connectClient(proxy.url, { clientId: '', username: '', password: tokens.get(id), keepalive: 30 });

  it('every device activates itself and gets its own token', async () => {
    await pooled(ids, 10, async (id) => {
      const anon = await connectClient(proxy.url, { clientId: id });
      try {
        const reply = nextMessage(anon, `$provision/${id}`);
        await publish(anon, `$provision/${id}`, '');
        tokens.set(id, (await reply).payload.toString());
      } finally {
        anon.end();
      }
    });
    assert.equal(new Set(tokens.values()).size, N);
  });

  it('values, objects and batches of every device arrive north on its own thng', async () => {
    devices = await pooled(ids, 10, (id) => connectDevice(id));
    const base = 1_700_000_000_000_000;
    await pooled(devices, 10, async (c, i) => {
      await publish(c, '$resource/energy', String(i * 1000), { qos: 1 });
      await publish(c, '$resource', JSON.stringify({ voltage: 230 + i, current: i / 10 }), { qos: 1 });
      const batch = [0, 1, 2].map((k) => ({
        timestamp: base + i * 1_000_000 + k * 1000,
        values: { energy: i * 1000 + k },
      }));
      await publish(c, '$resource.batch', JSON.stringify(batch), { qos: 1 });
    });
    // Per device: energy 1 + voltage 1 + current 1 + 3 batch points.
    const deadline = Date.now() + 10_000;
    while (points.length < N * 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(points.length, N * 6);
    for (const id of ids) {
      const i = indexOf(id);
      const mine = points.filter((p) => p.thng === id);
      const energy = mine.filter((p) => p.key === 'energy').map((p) => p.value);
      assert.deepEqual(
        energy.sort((a, b) => Number(a) - Number(b)),
        [i * 1000, i * 1000, i * 1000 + 1, i * 1000 + 2],
        id,
      );
      assert.deepEqual(mine.find((p) => p.key === 'voltage')?.value, 230 + i);
      assert.deepEqual(mine.find((p) => p.key === 'current')?.value, i / 10);
      // The batch points keep their own times, µs turned into ms.
      const batchTimes = mine
        .filter((p) => p.key === 'energy' && p.timestamp < 1_700_000_100_000)
        .map((p) => p.timestamp)
        .sort((a, b) => a - b);
      assert.deepEqual(
        batchTimes,
        [0, 1, 2].map((k) => 1_700_000_000_000 + i * 1000 + k),
        id,
      );
    }
    assert.equal(new Set(points.map((p) => p.thng)).size, N);
  });

  it('downlinks reach their own device only, as QoS 0 $resource/{alias}', async () => {
    const received = devices.map((c) => collect(c, '$resource/+', 1, 8000));
    const extra = devices.map(
      (c) =>
        new Promise<number>((resolve) => {
          let n = 0;
          const on = () => n++;
          c.on('message', on);
          setTimeout(() => {
            c.removeListener('message', on);
            resolve(n);
          }, 2500);
        }),
    );
    for (const id of ids)
      await publish(
        platform,
        `/thngs/${id}/properties/setpoint`,
        JSON.stringify([{ value: indexOf(id) * 10 }]),
        { qos: 1 },
      );
    const got = await Promise.all(received);
    got.forEach((msgs, i) => {
      assert.equal(msgs[0]?.topic, '$resource/setpoint');
      assert.equal(msgs[0]?.payload.toString(), String(i * 10), ids[i]);
      assert.equal(msgs[0]?.packet.qos, 0);
    });
    assert.deepEqual(
      await Promise.all(extra),
      devices.map(() => 1),
      'a device got a message that was not its own',
    );
  });

  it('after a disconnect, changes made offline are synced and uplinks flow again', async () => {
    await Promise.all(
      devices.map(async (c) => {
        c.end();
        await waitClosed(c).catch(() => undefined);
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    for (const id of ids)
      await publish(
        platform,
        `/thngs/${id}/properties/target`,
        JSON.stringify([{ value: `t-${indexOf(id)}` }]),
        { qos: 1 },
      );
    const synced: Array<Promise<Array<{ topic: string; payload: Buffer }>>> = [];
    devices = await pooled(ids, 10, async (id) => {
      // Synced values follow the CONNACK at once: listen before connecting.
      const c = mqtt.connect(proxy.url, {
        clientId: '',
        username: '',
        password: tokens.get(id),
        reconnectPeriod: 0,
      });
      synced[indexOf(id)] = collect(c, '$resource/+', 1, 8000).catch(() => []);
      return c;
    });
    const got = await Promise.all(synced);
    got.forEach((msgs, i) => {
      assert.deepEqual(
        msgs.map((m) => [m.topic, m.payload.toString()]),
        [['$resource/target', `t-${i}`]],
        ids[i],
      );
    });
    const before = points.length;
    await pooled(devices, 10, (c, i) => publish(c, '$resource/energy', String(i * 1000 + 99), { qos: 1 }));
    const deadline = Date.now() + 10_000;
    while (points.length < before + N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const fresh = points.slice(before);
    assert.equal(fresh.length, N);
    for (const p of fresh) assert.equal(p.value, indexOf(p.thng) * 1000 + 99);
  });
});
