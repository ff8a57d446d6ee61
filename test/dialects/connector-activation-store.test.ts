/**
 * Connector activation (`$provision/{deviceId}`) at its edges. A device the credentials file
 * already lists is an existing device: activating its id again is refused, as for an id in
 * the store. And a store that fails part-way: the
 * activation writes two records (the device, and its token's index) on a real redis-server,
 * and a failure between them must not leave an id that can never be activated again.
 * The failure is made real and deterministic with a Redis ACL: the proxy's user may write the
 * device records but not the token index, then gets every key back (the store "comes back").
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/store/redis.js';
import { type RedisServer, startRedis } from '../emulators/redis.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  waitClosed,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  API_KEY,
  type Broker,
  type MappingsDir,
  mappingsDir,
  provisionRoute,
  proxyFor,
  startEvrythngNorth,
  type TempStore,
  tempStore,
} from './connector-env.js';

const FILE_TOKEN = 'f1e2d3c4b5a697887766554433221100ffeeddcc';

describe('Connector activation on a route with a credentials file too', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    mappings = mappingsDir({
      'routes/test-provision-file.yaml': provisionRoute('test-provision-file', 'token').replace(
        'identity:\n',
        'identity:\n  file: credentials/test-provision-file.yaml\n',
      ),
      'credentials/test-provision-file.yaml': [
        `- south: { deviceId: "listed-1", token: "${FILE_TOKEN}" }`,
        `  north: { thngId: "listed-1", apiKey: "\${TEST_EVRYTHNG_KEY}" }`,
        '',
      ].join('\n'),
    });
    st = tempStore();
    proxy = await proxyFor(north, mappings, 'test-provision-file', st.store);
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await st?.cleanup();
    await north?.stop();
    mappings?.cleanup();
  });

  it('refuses to activate an id the credentials file lists: no second identity for that device', async () => {
    const anon = await connectClient(proxy.url, { clientId: '' });
    clients.push(anon);
    let token: string | undefined;
    anon.on('message', (_t, p: Buffer) => {
      token = p.toString();
    });
    const closed = waitClosed(anon);
    anon.publish('$provision/listed-1', '');
    await closed;
    assert.equal(token, undefined, 'a token was given for a device the file lists');
    assert.equal(await st.store.get('connector', 'listed-1'), undefined);
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: FILE_TOKEN });
    clients.push(dev);
    assert.ok(dev.connected, 'the listed device still connects with its own token');
    // An id the file does not list activates as before.
    const other = await connectClient(proxy.url, { clientId: '' });
    clients.push(other);
    const reply = nextMessage(other, '$provision/new-1');
    await publish(other, '$provision/new-1', '');
    assert.match((await reply).payload.toString(), /^[0-9a-f]{40}$/);
  });
});

describe('Connector activation with a store that fails between its two writes', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let redis: RedisServer;
  let admin: Redis;
  let store: RedisStore;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    redis = await startRedis();
    admin = new Redis(redis.url);
    await admin.call('ACL', 'SETUSER', 'proxy', 'on', '>proxy-pass', '~mqtt-proxy:connector:*', '+@all');
    mappings = mappingsDir({
      'routes/test-provision-partial.yaml': provisionRoute('test-provision-partial', 'token'),
    });
    store = new RedisStore({ url: `redis://proxy:proxy-pass@127.0.0.1:${redis.port}/0` });
    proxy = await proxyFor(north, mappings, 'test-provision-partial', store);
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await store?.close();
    admin?.disconnect();
    await redis?.stop();
    await north?.stop();
    mappings?.cleanup();
  });

  it('an activation whose token could not be recorded can be made again once the store is back', async () => {
    const first = await connectClient(proxy.url, { clientId: '' });
    clients.push(first);
    const closed = waitClosed(first);
    first.publish('$provision/partial-1', '');
    await closed; // the token's index could not be written: no token given

    await admin.call('ACL', 'SETUSER', 'proxy', 'allkeys');
    const again = await connectClient(proxy.url, { clientId: '' });
    clients.push(again);
    const reply = nextMessage(again, '$provision/partial-1');
    await publish(again, '$provision/partial-1', '');
    const token = (await reply).payload.toString();
    assert.match(token, /^[0-9a-f]{40}$/);
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token });
    clients.push(dev);
    assert.ok(dev.connected);
  });
});
