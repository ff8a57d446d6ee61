/**
 * Every protocol quirk of the Connector face, with real MQTT.js clients through the proxy to an
 * EVRYTHNG north emulated by mosquitto (password file + ACL): session present, clean session,
 * will, retain, QoS 2, DUP with QoS 0, acks from the device, unknown topics, the SUBSCRIBE
 * allowed list, UNSUBSCRIBE, the resource size limit, auto-subscription and offline sync.
 */
import assert from 'node:assert/strict';
import type { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  type Broker,
  type MappingsDir,
  PASSWORD_P,
  platformClient,
  proxyFor,
  quirksMappings,
  startEvrythngNorth,
  subackCodes,
  TOKENS,
} from './connector-env.js';

describe('Connector face: protocol quirks (MQTT.js)', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let proxy: TestProxy;
  let platform: MqttClient;
  const clients: MqttClient[] = [];

  before(async () => {
    north = await startEvrythngNorth();
    mappings = quirksMappings();
    proxy = await proxyFor(north, mappings, 'test-connector');
    platform = await platformClient(north);
    await subscribe(platform, '#', { qos: 1 });
  });

  after(async () => {
    await closeAll([...clients, platform]);
    await proxy?.close();
    await north?.stop();
    mappings?.cleanup();
  });

  async function device(token: string = TOKENS.a, extra: Parameters<typeof connectClient>[1] = {}) {
    const c = await connectClient(proxy.url, { clientId: '', username: '', password: token, ...extra });
    clients.push(c);
    return c;
  }

  /** Writes a packet on the client's own connection (MQTT.js has no API for stray acks). */
  function sendRaw(c: MqttClient, packet: Packet): void {
    (c as unknown as { stream: Writable }).stream.write(mqttPacket.generate(packet));
  }

  it('CONNACK session present is always 1, whatever clean session the device asks', async () => {
    for (const clean of [true, false]) {
      // MQTT.js wants a client id for clean = false: the device id, which Connector allows.
      const r = await tryConnect(proxy.url, {
        clientId: clean ? '' : 'dev-a',
        username: '',
        password: TOKENS.a,
        clean,
      });
      clients.push(r.client);
      assert.equal(r.connack?.returnCode, 0);
      assert.equal(r.connack?.sessionPresent, true, `clean=${clean}`);
      r.client.end(true);
    }
  });

  // The spec's table: token (client id and username empty or the device id), password
  // (username = device id, client id empty or the device id).
  const table: Array<[string, string, () => string, boolean]> = [
    ['', '', () => TOKENS.a, true],
    ['dev-a', '', () => TOKENS.a, true],
    ['', 'dev-a', () => TOKENS.a, true],
    ['dev-a', 'dev-a', () => TOKENS.a, true],
    ['dev-b', '', () => TOKENS.a, false],
    ['', 'dev-b', () => TOKENS.a, false],
    ['some-client', '', () => TOKENS.a, false],
    ['', 'dev-p', () => PASSWORD_P, true],
    ['dev-p', 'dev-p', () => PASSWORD_P, true],
    ['', '', () => PASSWORD_P, false],
    ['other', 'dev-p', () => PASSWORD_P, false],
  ];
  for (const [clientId, username, secret, ok] of table) {
    it(`client id "${clientId}", username "${username}", ${secret() === PASSWORD_P ? 'password' : 'token'}: ${ok ? 'accepted' : 'refused'}`, async () => {
      const r = await tryConnect(proxy.url, { clientId, username, password: secret(), clean: true });
      clients.push(r.client);
      if (ok) assert.equal(r.connack?.returnCode, 0);
      else assert.ok(r.connack === undefined || r.connack.returnCode !== 0, 'accepted');
      r.client.end(true);
    });
  }

  it('acknowledges QoS 1 with PUBACK and translates $resource/{alias} to a property list', async () => {
    const c = await device();
    const seen = nextMessage(platform, '/thngs/THNGA/properties/temp');
    const acks: string[] = [];
    c.on('packetreceive', (p: Packet) => acks.push(p.cmd));
    await publish(c, '$resource/temp', '21.5', { qos: 1 });
    assert.deepEqual(acks, ['puback']);
    const m = await seen;
    const body = JSON.parse(m.payload.toString()) as Array<{ value: unknown; timestamp: number }>;
    assert.equal(body.length, 1);
    assert.equal(body[0]?.value, 21.5);
    assert.ok(Math.abs((body[0]?.timestamp ?? 0) - Date.now()) < 60_000, 'timestamp in ms');
  });

  it('clears the retain flag: nothing is retained north', async () => {
    const c = await device();
    const seen = nextMessage(platform, '/thngs/THNGA/properties/kept');
    await publish(c, '$resource/kept', '1', { qos: 1, retain: true });
    await seen;
    const late = await platformClient(north);
    clients.push(late);
    await subscribe(late, '/thngs/THNGA/properties/kept', { qos: 1 });
    assert.equal((await gather(late, '#', 400)).length, 0, 'a retained copy reached a later subscriber');
  });

  it('treats QoS 2 as QoS 0: no PUBREC, delivered north at QoS 0', async () => {
    const c = await device();
    const acks: string[] = [];
    c.on('packetreceive', (p: Packet) => {
      if (p.cmd === 'pubrec' || p.cmd === 'puback') acks.push(p.cmd);
    });
    const seen = nextMessage(platform, '/thngs/THNGA/properties/q2');
    c.publish('$resource/q2', '7', { qos: 2 });
    const m = await seen;
    assert.equal((m.packet as IPublishPacket).qos, 0);
    await gather(c, '#', 200);
    assert.deepEqual(acks, []);
  });

  it('drops the will: an abrupt end publishes nothing north', async () => {
    const c = await device(TOKENS.a, {
      will: { topic: '$resource/alarm', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    const watch = gather(platform, '#', 700);
    (c as unknown as { stream: Writable }).stream.destroy();
    const got = await watch;
    assert.deepEqual(
      got.map((m) => m.topic),
      [],
    );
  });

  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
    it(`disconnects a device that sends ${cmd.toUpperCase()}`, async () => {
      const c = await device();
      const closed = waitClosed(c);
      sendRaw(c, { cmd, messageId: 42 } as Packet);
      await closed;
    });
  }

  it('disconnects on DUP=1 with QoS 0', async () => {
    const c = await device();
    const closed = waitClosed(c);
    c.publish('$resource/temp', '1', { qos: 0, dup: true });
    await closed;
  });

  for (const topic of ['/thngs/THNGA/properties/temp', 'resource/temp', '$resource/a/b', '$resources', 'x']) {
    it(`disconnects on a publish outside the fixed set: ${topic}`, async () => {
      const c = await device();
      const watch = gather(platform, '#', 300);
      const closed = waitClosed(c);
      c.publish(topic, '1', { qos: 0 });
      await closed;
      assert.deepEqual(
        (await watch).map((m) => m.topic),
        [],
      );
    });
  }

  it('grants QoS 0 to the allowed filters and 0x80 to the rest', async () => {
    const c = await device();
    const allowed = ['#', '$content', '$provision/dev-a', '$resource/#', '$resource/+', '$resource/temp'];
    assert.deepEqual(await subackCodes(c, allowed, 1), [0, 0, 0, 0, 0, 0]);
    const refused = [
      'foo/bar',
      '$provision/dev-b',
      '/thngs/THNGA/properties/temp',
      '$resource/+/x',
      '+',
      '$SYS/#',
    ];
    assert.deepEqual(await subackCodes(c, refused, 1), [128, 128, 128, 128, 128, 128]);
    assert.ok(c.connected);
  });

  it('answers UNSUBSCRIBE and keeps delivering (auto-subscription, QoS 0)', async () => {
    const c = await device();
    await subackCodes(c, ['$resource/#'], 0);
    await c.unsubscribeAsync('$resource/#');
    const got = nextMessage(c, '$resource/setpoint');
    await publish(platform, '/thngs/THNGA/properties/setpoint', JSON.stringify([{ value: 19 }]), { qos: 1 });
    const m = await got;
    assert.equal(m.payload.toString(), '19');
    assert.equal(m.packet.qos, 0);
    assert.equal(m.packet.retain, false);
  });

  it('delivers downlinks to their own device only', async () => {
    const a = await device(TOKENS.a);
    const b = await device(TOKENS.b);
    const toA = gather(a, '#', 600);
    const toB = nextMessage(b, '$resource/mode');
    await publish(platform, '/thngs/THNGB/properties/mode', JSON.stringify([{ value: 'eco' }]), { qos: 1 });
    assert.equal((await toB).payload.toString(), 'eco');
    assert.deepEqual(
      (await toA).map((m) => m.topic),
      [],
    );
  });

  it('syncs values changed while the device was offline when it connects', async () => {
    const first = await device(TOKENS.b);
    await subackCodes(first, ['$resource/#'], 0);
    first.end();
    await waitClosed(first).catch(() => undefined);
    // The north session ends with the device; the platform changes two resources meanwhile.
    await new Promise((r) => setTimeout(r, 200));
    await publish(platform, '/thngs/THNGB/properties/target', JSON.stringify([{ value: 22 }]), { qos: 1 });
    await publish(platform, '/thngs/THNGB/properties/fan', JSON.stringify([{ value: 'on' }]), { qos: 1 });
    // The synced values follow the CONNACK at once: listen before connecting.
    const c = mqtt.connect(proxy.url, { clientId: '', username: '', password: TOKENS.b, reconnectPeriod: 0 });
    clients.push(c);
    const got = await collect(c, '$resource/+', 2, 5000).catch(() => []);
    const byTopic = Object.fromEntries(got.map((m) => [m.topic, m.payload.toString()]));
    assert.deepEqual(byTopic, { '$resource/target': '22', '$resource/fan': 'on' });
  });

  it('accepts a resource value of 1,048,576 bytes and disconnects on one byte more', async () => {
    const c = await device();
    const seen = nextMessage(platform, '/thngs/THNGA/properties/blob', 10_000);
    await publish(c, '$resource/blob', Buffer.alloc(1_048_576, 0x61), { qos: 1 }, 10_000);
    const m = await seen;
    assert.ok(m.payload.length > 1_048_576);
    const closed = waitClosed(c, 10_000);
    c.publish('$resource/blob', Buffer.alloc(1_048_577, 0x61), { qos: 1 });
    await closed;
  });

  it('clamps the keepalive sent north to 120 s (EVRYTHNG) and keeps a shorter one', async () => {
    await device(TOKENS.a, { keepalive: 600 });
    await device(TOKENS.b, { keepalive: 45 });
    const log = () => north.log();
    const deadline = Date.now() + 3000;
    while (!/as THNGB \(p2, c0, k45/.test(log()) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(log(), /as THNGA \(p2, c0, k120,/);
    assert.doesNotMatch(log(), /as THNGA \(p2, c\d, k600/);
    assert.match(log(), /as THNGB \(p2, c0, k45,/);
  });

  it('serves the same device over MQTT over WebSocket', async () => {
    const c = await connectClient(proxy.wsUrl, { clientId: '', username: '', password: TOKENS.a });
    clients.push(c);
    const seen = nextMessage(platform, '/thngs/THNGA/properties/ws');
    await publish(c, '$resource/ws', '"over-ws"', { qos: 1 });
    assert.equal(
      (JSON.parse((await seen).payload.toString()) as Array<{ value: unknown }>)[0]?.value,
      'over-ws',
    );
    const down = nextMessage(c, '$resource/wsdown');
    await publish(platform, '/thngs/THNGA/properties/wsdown', JSON.stringify([{ value: 1 }]), { qos: 1 });
    assert.equal((await down).payload.toString(), '1');
  });

  it('refuses anonymous clients when the route does not provision (CONNACK 5)', async () => {
    const r = await tryConnect(proxy.url, { clientId: '' });
    assert.equal(r.connack?.returnCode, 5);
  });
});
