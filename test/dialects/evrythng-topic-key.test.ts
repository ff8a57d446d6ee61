/**
 * EVRYTHNG's MQTT over WebSocket example (mqttws31.js): a client connects with no credentials
 * and authenticates with its first SUBSCRIBE, `/thngs/{id}/properties?access_token=KEY`.
 * Real clients: MQTT.js over WebSocket through the proxy (shipped route evrythng-to-connector)
 * to a real mosquitto standing in for the Connector (the device's token enforced), and an
 * MQTT.js observer on mosquitto playing the platform. The key never reaches a log line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import type { TestProxy } from '../helpers/proxy.js';
import { subackCodes } from './connector-env.js';
import {
  captureLogs,
  metricValue,
  scrape,
  startRouteProxy,
  tempDir,
  until,
  writeCredentials,
} from './kit.js';

const KEY_1 = 'Kq7wTopicKeyOne0123456789abcdefXYZ';
const KEY_2 = 'Lr8xTopicKeyTwo0123456789abcdefXYZ';
const WRONG = 'Ms9yNotAKnownKey0123456789abcdefXYZ';
const TOKEN_1 = 'c0ffee0123456789abcdef0123456789abcdef01';
const TOKEN_2 = 'c0ffee0123456789abcdef0123456789abcdef02';
const ROUTE = 'evrythng-to-connector';
const NORTH_CONNECTS = 'mqtt_proxy_north_connect_duration_seconds_count';

describe('EVRYTHNG over WebSocket: the API key on the first SUBSCRIBE (?access_token=)', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let observer: MqttClient;
  const logs = captureLogs();
  const dir = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startMosquitto({
      passwords: { 'dev-k1': TOKEN_1, 'dev-k2': TOKEN_2, observer: 'observer-pw' },
    });
    const credentials = writeCredentials(dir.dir, [
      { south: { apiKey: KEY_1, thngId: 'THNG1' }, north: { deviceId: 'dev-k1', token: TOKEN_1 } },
      { south: { apiKey: KEY_2, thngId: 'THNG2' }, north: { deviceId: 'dev-k2', token: TOKEN_2 } },
    ]);
    proxy = await startRouteProxy(ROUTE, broker.url, credentials, { logger: logs.logger });
    observer = await connectClient(broker.url, {
      username: 'observer',
      password: 'observer-pw',
      clientId: 'observer',
    });
    clients.push(observer);
    await subscribe(observer, '$resource/#', { qos: 1 });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await broker?.stop();
    dir.cleanup();
  });

  /** A browser-like client: MQTT 3.1.1 over WebSocket, no username, no password. */
  const wsClient = async (): Promise<MqttClient> => {
    const c = await connectClient(proxy.wsUrl, { protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };
  const northConnects = async () => metricValue(await scrape(proxy), NORTH_CONNECTS, `route="${ROUTE}"`);

  it('connects without credentials, opens north on the keyed SUBSCRIBE; uplinks and downlinks flow', async () => {
    const before = await northConnects();
    const c = await wsClient();
    assert.ok(c.connected, 'CONNACK 0 without credentials');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await northConnects(), before, 'no north connection before a key');

    const granted = await subscribe(c, `/thngs/THNG1/properties/setpoint?access_token=${KEY_1}`, { qos: 1 });
    assert.deepEqual(
      granted.map((g) => g.qos),
      [1],
    );
    assert.equal(await northConnects(), before + 1, 'one north connection, opened by the key');

    // Downlink: the Connector's $resource/setpoint reaches the subscriber.
    const down = nextMessage(c, '/thngs/THNG1/properties/setpoint');
    await publish(observer, '$resource/setpoint', '19', { qos: 1 });
    const got = await down;
    assert.equal(got.topic, '/thngs/THNG1/properties/setpoint', 'the key is not in the topic');
    const body = JSON.parse(got.payload.toString()) as Array<{ value: unknown }>;
    assert.equal(body[0]?.value, 19);

    // Uplink, no key needed any more: the Connector sees $resource/temp.
    const up = nextMessage(observer, '$resource/temp');
    await publish(c, '/thngs/THNG1/properties/temp', JSON.stringify([{ value: 21.5 }]), { qos: 1 });
    assert.equal((await up).payload.toString(), '21.5');

    // The same key again, with pubStates: granted, and the last value comes right after.
    const last = nextMessage(c, '/thngs/THNG1/properties/temp');
    const again = await subscribe(c, `/thngs/THNG1/properties/temp?access_token=${KEY_1}&pubStates=1`, {
      qos: 0,
    });
    assert.deepEqual(
      again.map((g) => g.qos),
      [0],
    );
    assert.equal((JSON.parse((await last).payload.toString()) as Array<{ value: unknown }>)[0]?.value, 21.5);
  });

  it('a publish carrying the key authenticates too; a different key later is refused (0x80)', async () => {
    const c = await wsClient();
    const up = nextMessage(observer, '$resource/humidity');
    await publish(
      c,
      `/thngs/THNG2/properties/humidity?access_token=${KEY_2}`,
      JSON.stringify([{ value: 40 }]),
      {
        qos: 1,
      },
    );
    assert.equal((await up).payload.toString(), '40');
    // Another valid key on the same connection: refused; the connection's own key is fine.
    assert.deepEqual(await subackCodes(c, [`/thngs/THNG1/properties?access_token=${KEY_1}`]), [0x80]);
    assert.deepEqual(await subackCodes(c, [`/thngs/THNG2/properties?access_token=${KEY_2}`]), [1]);
    assert.ok(c.connected);
  });

  it('an unknown key: SUBACK 0x80, nothing north, counted as bad_credentials; the client may try again', async () => {
    const before = await northConnects();
    const failuresBefore = metricValue(
      await scrape(proxy),
      'mqtt_proxy_auth_failures_total',
      'reason="bad_credentials"',
    );
    const c = await wsClient();
    assert.deepEqual(
      await subackCodes(c, [`/thngs/THNG1/properties/setpoint?access_token=${WRONG}`]),
      [0x80],
    );
    // Still unauthenticated: a publish without a key is dropped, a subscription without one is silent.
    const seen = gather(observer, '$resource/#', 400);
    await publish(c, '/thngs/THNG1/properties/temp', JSON.stringify([{ value: 99 }]), { qos: 1 });
    await publish(c, `/thngs/THNG1/properties/temp?access_token=${WRONG}`, JSON.stringify([{ value: 98 }]), {
      qos: 1,
    });
    assert.deepEqual(await subackCodes(c, ['/thngs/THNG1/properties/setpoint']), [1]);
    assert.deepEqual(await seen, [], 'nothing reached the Connector');
    const text = await scrape(proxy);
    assert.equal(metricValue(text, NORTH_CONNECTS, `route="${ROUTE}"`), before, 'no north connection');
    assert.equal(
      metricValue(text, 'mqtt_proxy_auth_failures_total', 'reason="bad_credentials"'),
      failuresBefore + 2,
    );
    assert.ok(c.connected, 'the connection stays, unauthenticated');
    // The right key afterwards opens the session.
    assert.deepEqual(await subackCodes(c, [`/thngs/THNG1/properties/level?access_token=${KEY_1}`]), [1]);
    assert.equal(await northConnects(), before + 1);
  });

  it('over TCP too: the dialect declares keys on topics, whatever the transport', async () => {
    const c = await connectClient(proxy.url, { protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(c);
    assert.deepEqual(await subackCodes(c, [`/thngs/THNG2/properties/mode?access_token=${KEY_2}`]), [1]);
    const up = nextMessage(observer, '$resource/mode');
    await publish(c, '/thngs/THNG2/properties/mode', JSON.stringify([{ value: 'eco' }]), { qos: 1 });
    assert.equal((await up).payload.toString(), 'eco');
  });

  it('no key, no secret: the keys appear in no log line', async () => {
    await until(() => logs.text().length > 0, 2000, 'log lines');
    assert.match(logs.text(), /key on a topic refused/);
    for (const secret of [KEY_1, KEY_2, WRONG, TOKEN_1, TOKEN_2]) {
      const bytes = Buffer.from(secret);
      for (const form of [
        secret,
        bytes.toString('base64'),
        bytes.toString('hex'),
        bytes.toJSON().data.join(','),
      ])
        assert.equal(logs.text().includes(form), false, 'a key appears in the log');
    }
  });
});
