/**
 * MQTT features through the proxy in pass-through to a real mosquitto: retained messages,
 * will messages, a persistent session (clean session 0), unsubscribe, a 512 KiB payload,
 * 100 concurrent clients and MQTT 3.1 ('MQIsdp').
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions } from 'mqtt';
import {
  closeAll,
  closeClient,
  collect,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

describe('core: MQTT features through the proxy', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy({ north: { url: broker.url } });
  });
  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
  });

  const open = async (opts: IClientOptions = {}, url = proxy.url): Promise<MqttClient> => {
    const c = await connectClient(url, opts);
    clients.push(c);
    return c;
  };

  for (const protocolVersion of [4, 5] as const) {
    it(`retained messages are stored north and delivered to later subscribers (v${protocolVersion})`, async () => {
      const topic = `feat/retain/${protocolVersion}`;
      const pub = await open({ protocolVersion });
      await publish(pub, topic, 'kept', { qos: 1, retain: true });
      const sub = await open({ protocolVersion });
      const got = nextMessage(sub, topic);
      await subscribe(sub, topic, { qos: 1 });
      const m = await got;
      assert.equal(m.payload.toString(), 'kept');
      assert.equal(m.packet.retain, true);
      // Cleared with an empty retained message: a new subscriber then gets nothing.
      await publish(pub, topic, '', { qos: 1, retain: true });
      const late = await open({ protocolVersion });
      await subscribe(late, topic, { qos: 1 });
      assert.deepEqual(await gather(late, topic, 300), []);
    });

    it(`the will message is published when a client vanishes (v${protocolVersion})`, async () => {
      const topic = `feat/will/${protocolVersion}`;
      const watcher = await open({ protocolVersion });
      await subscribe(watcher, topic, { qos: 1 });
      const dying = await open({
        protocolVersion,
        will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      const got = nextMessage(watcher, topic, 8000);
      // No DISCONNECT: the socket is destroyed, as when a device loses power.
      dying.stream.destroy();
      const m = await got;
      assert.equal(m.payload.toString(), 'gone');
    });

    it(`a clean DISCONNECT suppresses the will (v${protocolVersion})`, async () => {
      const topic = `feat/nowill/${protocolVersion}`;
      const watcher = await open({ protocolVersion });
      await subscribe(watcher, topic, { qos: 1 });
      const c = await connectClient(proxy.url, {
        protocolVersion,
        will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      await closeClient(c, false);
      assert.deepEqual(await gather(watcher, topic, 500), []);
    });
  }

  it('a persistent session (clean session 0) gets what was queued while it was away', async () => {
    const topic = 'feat/persist';
    const opts: IClientOptions = { clientId: 'persistent-1', clean: false, protocolVersion: 4 };
    const first = await connectClient(proxy.url, opts);
    await subscribe(first, topic, { qos: 1 });
    await closeClient(first, false);
    const pub = await open();
    for (let i = 0; i < 3; i++) await publish(pub, topic, `queued-${i}`, { qos: 1 });
    // The CONNACK carries sessionPresent from mosquitto, and the queued messages follow.
    const second = mqtt.connect(proxy.url, { ...opts, reconnectPeriod: 0, connectTimeout: 5000 });
    clients.push(second);
    const got = collect(second, topic, 3, 8000);
    const connack = new Promise<boolean>((resolve) =>
      second.once('connect', (p) => resolve(p.sessionPresent)),
    );
    assert.equal(await connack, true);
    assert.deepEqual(
      (await got).map((m) => m.payload.toString()),
      ['queued-0', 'queued-1', 'queued-2'],
    );
  });

  it('unsubscribe stops delivery', async () => {
    const c = await open({ protocolVersion: 5 });
    const pub = await open();
    await subscribe(c, 'feat/unsub/+', { qos: 1 });
    const first = nextMessage(c, 'feat/unsub/+');
    await publish(pub, 'feat/unsub/a', 'before', { qos: 1 });
    assert.equal((await first).payload.toString(), 'before');
    await c.unsubscribeAsync('feat/unsub/+');
    await publish(pub, 'feat/unsub/a', 'after', { qos: 1 });
    assert.deepEqual(await gather(c, 'feat/unsub/+', 400), []);
  });

  it('a 512 KiB payload arrives intact at QoS 0, 1 and 2', async () => {
    const payload = randomBytes(512 * 1024);
    const sub = await open();
    const pub = await open({ protocolVersion: 5 });
    await subscribe(sub, 'feat/big/+', { qos: 2 });
    const got = collect(sub, 'feat/big/+', 3, 15000);
    for (const qos of [0, 1, 2] as const) await publish(pub, `feat/big/${qos}`, payload, { qos }, 10000);
    for (const m of await got) assert.ok(m.payload.equals(payload), `${m.topic}: payload differs`);
  });

  it('100 concurrent clients each get their own messages', async () => {
    const n = 100;
    const many = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        connectClient(proxy.url, { clientId: `many-${i}`, protocolVersion: i % 2 ? 5 : 4 }),
      ),
    );
    clients.push(...many);
    await waitFor(() => proxy.connectionCount() >= n, 5000, `${n} connections open`);
    await Promise.all(many.map((c, i) => subscribe(c, `feat/many/${i}`, { qos: 1 })));
    const got = many.map((c, i) => nextMessage(c, `feat/many/${i}`, 10000));
    await Promise.all(
      many.map((c, i) => publish(c, `feat/many/${(i + 1) % n}`, `to-${(i + 1) % n}`, { qos: 1 })),
    );
    const payloads = (await Promise.all(got)).map((m) => m.payload.toString());
    assert.deepEqual(
      payloads,
      Array.from({ length: n }, (_, i) => `to-${i}`),
    );
    await closeAll(many);
    await waitFor(() => proxy.connectionCount() < n, 5000, 'connections closed');
  });

  it("MQTT 3.1 ('MQIsdp', protocol level 3) clients publish and subscribe", async () => {
    const opts: IClientOptions = { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'v31-client' };
    const c = await open(opts);
    await subscribe(c, 'feat/v31', { qos: 2 });
    const got = collect(c, 'feat/v31', 2, 5000);
    await publish(c, 'feat/v31', 'one', { qos: 1 });
    await publish(c, 'feat/v31', 'two', { qos: 2 });
    assert.deepEqual(
      (await got).map((m) => m.payload.toString()),
      ['one', 'two'],
    );
  });
});
