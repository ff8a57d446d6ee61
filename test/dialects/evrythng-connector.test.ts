/**
 * EVRYTHNG as the face shown to devices and applications, Connector as the platform behind
 * (the aedes Connector emulator): the shipped route evrythng-to-connector. The proxy
 * activates a device on the Connector when it has no token yet and keeps the token in the
 * store; properties are translated both ways; a subscription outside the key's thng stays
 * silent; the native WebSocket face (the `ws` client) works through the same route, 403 on a
 * bad key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { type ConnectorPlatform, startConnectorPlatform } from '../emulators/connector-platform.js';
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
import {
  evrythngToConnector,
  type MappingsDir,
  mappingsDir,
  proxyFor,
  type TempStore,
  tempStore,
} from './connector-env.js';

const KEY_1 = 'evt-device-key-one-0123456789';
const KEY_2 = 'evt-device-key-two-0123456789';
const KEY_3 = 'evt-device-key-three-012345678';

describe('EVRYTHNG face onto a Connector platform (route evrythng-to-connector)', () => {
  let connector: ConnectorPlatform;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];
  /** The store refuses every put while this is set (a store that is down). */
  let storeDown = false;

  before(async () => {
    connector = await startConnectorPlatform({
      authType: 'token',
      devices: [{ id: 'dev-known', token: 'known-token-0123456789' }],
    });
    // The shipped route with this test's Connector URL and credentials.
    mappings = evrythngToConnector(connector.url, [
      `- south: { apiKey: "${KEY_1}", thngId: THNG1 }`,
      '  north: { deviceId: dev-e1 }',
      `- south: { apiKey: "${KEY_2}", thngId: THNG2 }`,
      '  north: { deviceId: dev-known, token: "known-token-0123456789" }',
      `- south: { apiKey: "${KEY_3}", thngId: THNG3 }`,
      '  north: { deviceId: dev-e3 }',
    ]);
    st = tempStore();
    const inner = st.store;
    const store: typeof inner = Object.assign(Object.create(inner) as typeof inner, {
      put: (ns: string, id: string, record: Parameters<typeof inner.put>[2]) =>
        storeDown ? Promise.reject(new Error('store unavailable')) : inner.put(ns, id, record),
    });
    proxy = await proxyFor(connector, mappings, 'evrythng-to-connector', store, {
      listen: { nativeWs: true },
    });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await st?.cleanup();
    await connector?.stop();
    mappings?.cleanup();
  });

  const evt = async (key: string) => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: key });
    clients.push(c);
    return c;
  };

  it('activates a device without a token on the Connector once and keeps the token', async () => {
    const c = await evt(KEY_1);
    assert.ok(c.connected);
    assert.deepEqual(connector.provisionRequests, [{ deviceId: 'dev-e1', accepted: true }]);
    const kept = await st.store.get('connector-north', 'dev-e1');
    assert.equal(kept?.token, connector.device('dev-e1')?.token);
    c.end();
    const again = await evt(KEY_1);
    assert.ok(again.connected);
    assert.equal(connector.provisionRequests.length, 1, 'a second activation was attempted');
  });

  it("a store that is down when a device's token arrives loses no token: the device connects, once activated", async () => {
    storeDown = true;
    const first = await evt(KEY_3);
    assert.ok(first.connected, 'connected with the token from memory');
    assert.equal(await st.store.get('connector-north', 'dev-e3'), undefined, 'not stored yet');
    first.end();
    const second = await evt(KEY_3);
    assert.ok(second.connected);
    second.end();
    storeDown = false;
    const third = await evt(KEY_3);
    assert.ok(third.connected);
    assert.equal((await st.store.get('connector-north', 'dev-e3'))?.token, connector.device('dev-e3')?.token);
    assert.deepEqual(
      connector.provisionRequests.filter((r) => r.deviceId === 'dev-e3'),
      [{ deviceId: 'dev-e3', accepted: true }],
      'activated once',
    );
  });

  it('uses a token from the credentials file without activating', async () => {
    const c = await evt(KEY_2);
    assert.ok(c.connected);
    assert.ok(!connector.provisionRequests.some((r) => r.deviceId === 'dev-known'));
  });

  it('refuses a wrong API key (CONNACK 4) and a wrong username', async () => {
    const bad = await tryConnect(proxy.url, { username: 'authorization', password: 'nope-not-a-key' });
    assert.notEqual(bad.connack?.returnCode ?? -1, 0);
    const user = await tryConnect(proxy.url, { username: 'someone', password: KEY_1 });
    assert.notEqual(user.connack?.returnCode ?? -1, 0);
  });

  it('translates property updates to $resource publishes on the device', async () => {
    const c = await evt(KEY_1);
    await publish(
      c,
      '/thngs/THNG1/properties/temp',
      JSON.stringify([{ value: 21.5, timestamp: Date.now() }]),
      {
        qos: 1,
      },
    );
    await publish(
      c,
      '/thngs/THNG1/properties',
      JSON.stringify([
        { key: 'mode', value: 'eco' },
        { key: 'level', value: 3 },
      ]),
      { qos: 1 },
    );
    await connector.waitFor(() => connector.device('dev-e1')?.resources.has('level') === true, 5000, 'level');
    const r = connector.device('dev-e1')!.resources;
    assert.equal(r.get('temp')?.value, '21.5');
    assert.equal(r.get('mode')?.value, 'eco');
    assert.equal(r.get('level')?.value, '3');
    // Another thng's topic is not this key's: nothing reaches the Connector.
    const before = connector.device('dev-e1')!.uplinks.length;
    await publish(c, '/thngs/THNG2/properties/temp', JSON.stringify([{ value: 99 }]), { qos: 1 });
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(connector.device('dev-e1')!.uplinks.length, before);
    assert.equal(connector.device('dev-known')?.resources.get('temp'), undefined);
  });

  it('keeps a value over the Connector limit (1 MiB) from the platform: dropped, the client stays, the next value goes', async () => {
    const c = await evt(KEY_2);
    const big = 'x'.repeat(1_048_577);
    await publish(c, '/thngs/THNG2/properties/blob', JSON.stringify([{ value: big }]), { qos: 1 });
    await publish(c, '/thngs/THNG2/properties/after', JSON.stringify([{ value: 1 }]), { qos: 1 });
    const dev = () => connector.device('dev-known')!;
    await connector.waitFor(() => dev().resources.has('after'), 5000, 'the next value');
    assert.ok(c.connected);
    assert.equal(dev().resources.get('blob'), undefined, 'the value over the limit reached the platform');
    assert.deepEqual(
      connector.violations.filter((v) => v.reason === 'value_too_large'),
      [],
      'the platform saw a value over its limit',
    );
  });

  it('sends several timed points of a property as $resource.batch (ms become µs): none lost', async () => {
    const c = await evt(KEY_1);
    const points = [
      { value: 10, timestamp: 1_700_000_000_123 },
      { value: 11, timestamp: 1_700_000_060_123 },
      { value: 12, timestamp: 1_700_000_120_123 },
    ];
    await publish(c, '/thngs/THNG1/properties/flow', JSON.stringify(points), { qos: 1 });
    const dev = () => connector.device('dev-e1')!;
    await connector.waitFor(
      () => dev().history.filter((h) => h.alias === 'flow').length === 3,
      5000,
      'history',
    );
    assert.deepEqual(
      dev()
        .history.filter((h) => h.alias === 'flow')
        .map((h) => [h.value, h.ts]),
      points.map((p) => [p.value, p.timestamp * 1000]),
    );
  });

  it('delivers Connector changes as [{value, timestamp}] on the subscribed property topic', async () => {
    const c = await evt(KEY_1);
    await subscribe(c, '/thngs/THNG1/properties/setpoint', { qos: 1 });
    const got = nextMessage(c, '/thngs/THNG1/properties/setpoint');
    await connector.set('dev-e1', 'setpoint', '19');
    const body = JSON.parse((await got).payload.toString()) as Array<{ value: unknown; timestamp: number }>;
    assert.equal(body[0]?.value, 19);
    assert.ok(Math.abs((body[0]?.timestamp ?? 0) - Date.now()) < 60_000, 'timestamp in ms');
  });

  it('keeps a subscription outside the key silent: granted, nothing arrives', async () => {
    const c = await evt(KEY_1);
    const granted = await subscribe(c, '/thngs/THNG2/properties/setpoint', { qos: 1 });
    assert.ok(granted.every((g) => g.qos < 0x80));
    const watch = gather(c, '#', 500);
    await connector.set('dev-known', 'setpoint', '5');
    assert.deepEqual(await watch, []);
  });

  it('native WebSocket on a key with an escaped character (room%20temp): values go up and updates come back', async () => {
    const port = proxy.ports.ws;
    const ws = new WebSocket(
      `ws://127.0.0.1:${port}/thngs/THNG2/properties/room%20temp?access_token=${KEY_2}`,
    );
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`)));
    });
    const pushed = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('no update pushed on the socket within 5000 ms')),
        5000,
      );
      ws.once('message', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
    });
    ws.send(JSON.stringify([{ value: 48 }]));
    await connector.waitFor(
      () => connector.device('dev-known')?.resources.get('room temp')?.value === '48',
      5000,
      'ws uplink',
    );
    await connector.set('dev-known', 'room temp', '50');
    const body = JSON.parse(await pushed) as Array<{ value: unknown }>;
    assert.equal(body[0]?.value, 50);
    ws.close();
  });

  it('native WebSocket: publishes from the socket and pushes updates as JSON; 403 on a bad key', async () => {
    const port = proxy.ports.ws;
    const url = `ws://127.0.0.1:${port}/thngs/THNG1/properties/humidity?access_token=${KEY_1}`;
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const pushed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send(JSON.stringify([{ value: 48 }]));
    await connector.waitFor(
      () => connector.device('dev-e1')?.resources.get('humidity')?.value === '48',
      5000,
      'ws uplink',
    );
    await connector.set('dev-e1', 'humidity', '50');
    const body = JSON.parse(await pushed) as Array<{ value: unknown }>;
    assert.equal(body[0]?.value, 50);
    ws.close();
    // Authorization header instead of the query string.
    const viaHeader = new WebSocket(`ws://127.0.0.1:${port}/thngs/THNG1/properties/humidity`, {
      headers: { Authorization: KEY_1 },
    });
    await new Promise<void>((resolve, reject) => {
      viaHeader.once('open', () => resolve());
      viaHeader.once('error', reject);
    });
    viaHeader.close();
    const status = await new Promise<number>((resolve) => {
      const bad = new WebSocket(
        `ws://127.0.0.1:${port}/thngs/THNG1/properties/humidity?access_token=wrong-key`,
      );
      bad.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      bad.once('error', () => resolve(-1));
    });
    assert.equal(status, 403);
  });
});

describe('EVRYTHNG face onto a Connector that uses password authentication', () => {
  let connector: ConnectorPlatform;
  let mappings: MappingsDir;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];
  const PASSWORD = 'a-connector-password-of-24';

  before(async () => {
    connector = await startConnectorPlatform({
      authType: 'password',
      devices: [{ id: 'dev-pw', password: PASSWORD }],
    });
    mappings = mappingsDir({
      'routes/test-evt-pw.yaml': [
        'route: test-evt-pw',
        'south: evrythng',
        'north: connector',
        `url: ${connector.url}`,
        'identity:',
        '  file: credentials/test-evt-pw.yaml',
        '  key: apiKey',
        '',
      ].join('\n'),
      'credentials/test-evt-pw.yaml': [
        `- south: { apiKey: "${KEY_1}", thngId: THNG1 }`,
        `  north: { deviceId: dev-pw, password: "${PASSWORD}" }`,
        '',
      ].join('\n'),
    });
    proxy = await proxyFor(connector, mappings, 'test-evt-pw');
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await connector?.stop();
    mappings?.cleanup();
  });

  it('connects north with username = device id and the password; properties flow both ways', async () => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: KEY_1 });
    clients.push(c);
    await publish(c, '/thngs/THNG1/properties/temp', JSON.stringify([{ value: 17 }]), { qos: 1 });
    await connector.waitFor(
      () => connector.device('dev-pw')?.resources.get('temp')?.value === '17',
      5000,
      'temp',
    );
    // Subscribed to the properties list only: the change arrives as a list.
    await subscribe(c, '/thngs/THNG1/properties', { qos: 0 });
    const all = nextMessage(c, '/thngs/THNG1/properties');
    await connector.set('dev-pw', 'valve', '"open"');
    const list = JSON.parse((await all).payload.toString()) as Array<{ key: string; value: unknown }>;
    assert.deepEqual(
      list.map((p) => [p.key, p.value]),
      [['valve', 'open']],
    );
    // Subscribed to the property itself too: it arrives there, once.
    await subscribe(c, '/thngs/THNG1/properties/valve', { qos: 0 });
    const one = gather(c, '#', 600);
    await connector.set('dev-pw', 'valve', '"closed"');
    const got = await one;
    assert.deepEqual(
      got.map((m) => [m.topic, (JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value]),
      [['/thngs/THNG1/properties/valve', 'closed']],
    );
  });

  it('drops what a Connector cannot carry (actions, location) without closing the client', async () => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: KEY_1 });
    clients.push(c);
    const before = connector.device('dev-pw')!.uplinks.length;
    await publish(c, '/thngs/THNG1/actions/scans', JSON.stringify({ type: 'scans' }), { qos: 1 });
    await publish(
      c,
      '/thngs/THNG1/location',
      JSON.stringify([{ position: { type: 'Point', coordinates: [1, 2] } }]),
      {
        qos: 1,
      },
    );
    await publish(c, '/thngs/THNG1/properties/after', JSON.stringify([{ value: 1 }]), { qos: 1 });
    await connector.waitFor(() => connector.device('dev-pw')?.resources.has('after') === true, 5000, 'after');
    assert.equal(connector.device('dev-pw')!.uplinks.length, before + 1);
    assert.ok(c.connected);
    assert.deepEqual(connector.violations, []);
  });
});
