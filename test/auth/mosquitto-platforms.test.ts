/**
 * The mosquitto configurations for akenza uplink-secret mode and single-key EVRYTHNG enforce
 * what they claim, on a real mosquitto with real clients.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  akenzaSecretConfig,
  evrythngConfig,
  type MosquittoPlatform,
  startAkenzaSecretBroker,
  startEvrythngBroker,
} from '../emulators/mosquitto-platforms.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  type MqttClient,
  mosquittoPub,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';

const SECRET = 'secretABCDEFabcdef123456';
const OTHER = 'secretZYXWVUzyxwvu654321';

async function granted(client: MqttClient, filter: string): Promise<number> {
  return new Promise((resolve) => {
    client.subscribe(filter, { qos: 0 }, (err, grants) => {
      if (grants?.[0]) resolve(grants[0].qos);
      else resolve(err ? 128 : -1);
    });
  });
}

describe('akenza uplink-secret mode on mosquitto', () => {
  let broker: MosquittoPlatform;
  const clients: MqttClient[] = [];
  before(async () => {
    broker = await startAkenzaSecretBroker({
      connectors: [
        { id: 'connector-1', secret: SECRET },
        { id: 'connector-2', secret: OTHER, deviceIds: ['only-dev'] },
      ],
    });
  });
  after(async () => {
    await closeAll(clients);
    await broker?.stop();
  });

  it('lets a connector publish only under its own secret', async () => {
    const platform = await connectClient(broker.url, { ...broker.platform, clientId: 'platform' });
    clients.push(platform);
    await subscribe(platform, '/up/#');
    const seen = gather(platform, '/up/#', 800);
    const res = await mosquittoPub({
      url: broker.url,
      topic: `/up/${SECRET}/id/dev-1/alerts`,
      message: '{"a":1}',
      qos: 1,
      extra: ['-u', 'connector-1', '-P', SECRET],
    });
    assert.equal(res.code, 0, res.stderr);
    const c1 = await connectClient(broker.url, { username: 'connector-1', password: SECRET, clientId: 'c1' });
    clients.push(c1);
    await publish(c1, `/up/${OTHER}/id/dev-1`, '{"spoof":1}', { qos: 1 });
    const c2 = await connectClient(broker.url, { username: 'connector-2', password: OTHER, clientId: 'c2' });
    clients.push(c2);
    await publish(c2, `/up/${OTHER}/id/only-dev`, '{"b":2}', { qos: 1 });
    await publish(c2, `/up/${OTHER}/id/another-dev`, '{"c":3}', { qos: 1 });
    const topics = (await seen).map((m) => m.topic).sort();
    assert.deepEqual(topics, [`/up/${SECRET}/id/dev-1/alerts`, `/up/${OTHER}/id/only-dev`].sort());
  });

  it('refuses a wrong secret and delivers downlinks to the connector subscription only', async () => {
    const bad = await tryConnect(broker.url, { username: 'connector-1', password: OTHER, clientId: 'bad' });
    assert.ok(bad.connack && bad.connack.returnCode !== 0, 'wrong secret refused');
    const c1 = await connectClient(broker.url, {
      username: 'connector-1',
      password: SECRET,
      clientId: 'c1b',
    });
    clients.push(c1);
    assert.equal(await granted(c1, `/down/${SECRET}/id/dev-1/#`), 0);
    // mosquitto 2.0 grants a SUBSCRIBE the ACL denies, and then delivers nothing on it.
    await granted(c1, `/down/${OTHER}/id/only-dev/#`);
    const platform = await connectClient(broker.url, { ...broker.platform, clientId: 'platform-2' });
    clients.push(platform);
    const foreign = gather(c1, `/down/${OTHER}/#`, 600);
    const got = nextMessage(c1, `/down/${SECRET}/id/dev-1/#`);
    await publish(platform, `/down/${OTHER}/id/only-dev/x`, 'not for c1', { qos: 1 });
    await publish(platform, `/down/${SECRET}/id/dev-1/myTopic`, 'hello', { qos: 1 });
    assert.equal((await got).topic, `/down/${SECRET}/id/dev-1/myTopic`);
    assert.deepEqual(await foreign, []);
  });

  it('refuses ids and secrets that would break the ACL file', () => {
    assert.throws(() => akenzaSecretConfig({ connectors: [{ id: 'a b', secret: 'x' }] }), /without spaces/);
    assert.throws(() => akenzaSecretConfig({ connectors: [{ id: 'a', secret: 's/#' }] }), /without spaces/);
    assert.throws(() => evrythngConfig({ apiKey: 'k', thngs: ['x\ntopic readwrite #'] }), /without spaces/);
  });
});

describe('EVRYTHNG (one API key) on mosquitto', () => {
  let broker: MosquittoPlatform;
  const clients: MqttClient[] = [];
  const KEY = 'deviceApiKey0123456789abcdefABCDEF';
  before(async () => {
    broker = await startEvrythngBroker({ apiKey: KEY, thngs: ['UThng1'], products: ['UProd1'] });
  });
  after(async () => {
    await closeAll(clients);
    await broker?.stop();
  });

  it('accepts username "authorization" with the API key and nothing else', async () => {
    const ok = await connectClient(broker.url, { username: 'authorization', password: KEY, clientId: 'k1' });
    clients.push(ok);
    const bad = await tryConnect(broker.url, {
      username: 'authorization',
      password: 'other-key',
      clientId: 'k2',
    });
    assert.ok(bad.connack && bad.connack.returnCode !== 0);
  });

  it('scopes the key to its thngs and products, both ways', async () => {
    const platform = await connectClient(broker.url, { ...broker.platform, clientId: 'evt-platform' });
    clients.push(platform);
    await subscribe(platform, ['/thngs/#', '/products/#']);
    const seen = collect(platform, '#', 2, 3000);
    const dev = await connectClient(broker.url, {
      username: 'authorization',
      password: KEY,
      clientId: 'dev',
    });
    clients.push(dev);
    await publish(dev, '/thngs/UThng2/properties/temp', '[{"value":1}]', { qos: 1 });
    await publish(dev, '/thngs/UThng1/properties/temp', '[{"value":37.2}]', { qos: 1 });
    await publish(dev, '/products/UProd1/properties', '[{"key":"k","value":2}]', { qos: 1 });
    const topics = (await seen).map((m) => m.topic).sort();
    assert.deepEqual(topics, ['/products/UProd1/properties', '/thngs/UThng1/properties/temp']);
    assert.equal(await granted(dev, '/thngs/UThng1/properties/+'), 0);
    // A subscription outside the key's scope is silent, as on EVRYTHNG: granted, nothing delivered.
    await granted(dev, '/thngs/UThng2/properties/+');
    const foreign = gather(dev, '/thngs/UThng2/#', 600);
    const down = nextMessage(dev, '/thngs/UThng1/properties/+');
    await publish(platform, '/thngs/UThng2/properties/setpoint', '[{"value":5}]', { qos: 1 });
    await publish(platform, '/thngs/UThng1/properties/setpoint', '[{"value":21}]', { qos: 1 });
    assert.equal((await down).payload.toString(), '[{"value":21}]');
    assert.deepEqual(await foreign, []);
  });
});
