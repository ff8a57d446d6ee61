/**
 * EVRYTHNG face, Connector platform behind (the aedes Connector emulator, which has no
 * pubStates of its own): `?pubStates=1` is emulated by the proxy, which publishes the last
 * value it saw on the topic right after the SUBACK, not flagged retained, and only within the
 * subscriber's own scope (its Thng). A native WebSocket to a topic the key may not reach fails
 * its handshake with HTTP 403, where the same subscription over MQTT stays silent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import WebSocket from 'ws';
import { type ConnectorPlatform, startConnectorPlatform } from '../emulators/connector-platform.js';
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
import { type MappingsDir, mappingsDir, proxyFor } from './connector-env.js';

const KEY_1 = 'evt-thng1-key-0123456789abcdef';
const KEY_1B = 'evt-thng1-second-key-0123456789';
const KEY_2 = 'evt-thng2-key-0123456789abcdef';
const TS = 1_700_000_000_123;

/** Subscribes and records the order of the packets that follow (SUBACK, PUBLISH...). */
function subscribeTrace(client: MqttClient, filter: string): { order: string[]; done: Promise<void> } {
  const order: string[] = [];
  const onPacket = (p: Packet): void => {
    if (p.cmd === 'suback') order.push('suback');
    if (p.cmd === 'publish') order.push(`publish ${p.topic} retain=${p.retain}`);
  };
  client.on('packetreceive', onPacket);
  const done = (async () => {
    await subscribe(client, filter, { qos: 1 });
    await new Promise<void>((r) => setTimeout(r, 300));
    client.off('packetreceive', onPacket);
  })();
  return { order, done };
}

describe('EVRYTHNG ?pubStates=1 emulated by the proxy; native WebSocket 403', () => {
  let connector: ConnectorPlatform;
  let mappings: MappingsDir;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    connector = await startConnectorPlatform({
      authType: 'token',
      devices: [
        { id: 'dev-e1', token: 'token-e1-0123456789abcdef' },
        { id: 'dev-e1b', token: 'token-e1b-0123456789abcde' },
        { id: 'dev-e2', token: 'token-e2-0123456789abcdef' },
      ],
    });
    mappings = mappingsDir({
      'routes/test-evt-pubstates.yaml': [
        'route: test-evt-pubstates',
        'south: evrythng',
        'north: connector',
        `url: ${connector.url}`,
        'identity:',
        '  file: credentials/test-evt-pubstates.yaml',
        '  key: apiKey',
        '',
      ].join('\n'),
      'credentials/test-evt-pubstates.yaml': [
        `- south: { apiKey: "${KEY_1}", thngId: THNG1 }`,
        '  north: { deviceId: dev-e1, token: "token-e1-0123456789abcdef" }',
        `- south: { apiKey: "${KEY_1B}", thngId: THNG1 }`,
        '  north: { deviceId: dev-e1b, token: "token-e1b-0123456789abcde" }',
        `- south: { apiKey: "${KEY_2}", thngId: THNG2 }`,
        '  north: { deviceId: dev-e2, token: "token-e2-0123456789abcdef" }',
        '',
      ].join('\n'),
    });
    proxy = await proxyFor(connector, mappings, 'test-evt-pubstates', undefined, {
      listen: { nativeWs: true },
    });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await connector?.stop();
    mappings?.cleanup();
  });

  const evt = async (key: string) => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: key });
    clients.push(c);
    return c;
  };

  it('a value published by one client is sent to a later ?pubStates=1 subscriber right after the SUBACK, not retained', async () => {
    const c1 = await evt(KEY_1);
    const value = JSON.stringify([{ value: 21.5, timestamp: TS }]);
    await publish(c1, '/thngs/THNG1/properties/temp', value, { qos: 1 });
    await connector.waitFor(() => connector.device('dev-e1')?.resources.has('temp') === true, 5000, 'temp');
    await closeClient(c1);
    // Another key of the same Thng, another session.
    const c2 = await evt(KEY_1B);
    const got = nextMessage(c2, '/thngs/THNG1/properties/temp');
    const trace = subscribeTrace(c2, '/thngs/THNG1/properties/temp?pubStates=1');
    const m = await got;
    await trace.done;
    assert.equal(m.payload.toString(), value);
    assert.equal(m.packet.retain, false);
    assert.deepEqual(trace.order, ['suback', 'publish /thngs/THNG1/properties/temp retain=false']);
    // Re-sent when the client subscribes again after a reconnect.
    await closeClient(c2);
    const again = await evt(KEY_1B);
    const second = nextMessage(again, '/thngs/THNG1/properties/temp');
    await subscribe(again, '/thngs/THNG1/properties/temp?pubStates=1', { qos: 1 });
    assert.equal((await second).payload.toString(), value);
    await closeClient(again);
  });

  it('a value the platform pushed is the last value too', async () => {
    const c1 = await evt(KEY_1);
    await subscribe(c1, '/thngs/THNG1/properties/setpoint', { qos: 1 });
    const pushed = nextMessage(c1, '/thngs/THNG1/properties/setpoint');
    await connector.set('dev-e1', 'setpoint', '19');
    const first = await pushed;
    assert.equal((JSON.parse(first.payload.toString()) as Array<{ value: unknown }>)[0]?.value, 19);
    const late = await evt(KEY_1);
    const got = nextMessage(late, '/thngs/THNG1/properties/setpoint');
    await subscribe(late, '/thngs/THNG1/properties/setpoint?pubStates=1', { qos: 1 });
    assert.equal((await got).payload.toString(), first.payload.toString());
    await closeAll([c1, late]);
  });

  it('never another scope’s value: another Thng’s topic is silent, its own topic has no value yet', async () => {
    const c = await evt(KEY_2);
    const watch = gather(c, '#', 600);
    const granted = await subscribe(
      c,
      ['/thngs/THNG1/properties/temp?pubStates=1', '/thngs/THNG2/properties/temp?pubStates=1'],
      { qos: 1 },
    );
    assert.ok(
      granted.every((g) => g.qos < 0x80),
      'MQTT: granted, silent',
    );
    assert.deepEqual(
      (await watch).map((m) => m.topic),
      [],
    );
    await closeClient(c);
  });

  it('without ?pubStates=1 nothing is published on subscribing', async () => {
    const c = await evt(KEY_1B);
    const watch = gather(c, '#', 600);
    await subscribe(c, '/thngs/THNG1/properties/temp', { qos: 1 });
    assert.deepEqual(
      (await watch).map((m) => m.topic),
      [],
    );
    await closeClient(c);
  });

  it('native WebSocket: another Thng’s topic with a valid key is refused with 403; its own opens with the last value', async () => {
    const port = proxy.ports.ws;
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/thngs/THNG2/properties/temp?access_token=${KEY_1B}`);
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('error', () => resolve(-1));
    });
    assert.equal(status, 403);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/thngs/THNG1/properties/temp?pubStates=1`, {
      headers: { Authorization: KEY_1B },
    });
    const first = new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(d.toString()));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    try {
      assert.deepEqual(JSON.parse(await first), [{ value: 21.5, timestamp: TS }]);
    } finally {
      ws.close();
    }
  });
});
