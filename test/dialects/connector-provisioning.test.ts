/**
 * Connector as the face shown to devices: activation through `$provision/{deviceId}` by
 * anonymous clients (token and password authentication), later CONNECTs checked against the
 * file store (which survives a restart and takes concurrent activations), `$content`, and the
 * north EVRYTHNG (mosquitto with a password file and ACL) seeing the translated traffic.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { RedisStore } from '../../src/store/redis.js';
import { type RedisServer, startRedis } from '../emulators/redis.js';
import { generateCerts, type TestPki } from '../helpers/certs.js';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  runPaho,
  subscribe,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import {
  API_KEY,
  type Broker,
  type MappingsDir,
  mappingsDir,
  platformClient,
  provisionRoute,
  proxyFor,
  startEvrythngNorth,
  subackCodes,
  type TempStore,
  tempStore,
} from './connector-env.js';

const CONTENT = [
  { name: 'logo.gif', length: 16214, mime: 'image/gif', url: 'https://content.example/logo.gif' },
  { name: 'fw-2.1.bin', length: 524288, mime: 'application/octet-stream', url: 'https://content.example/fw' },
];

describe('Connector south: activation by token, store, content', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  let platform: MqttClient;
  const clients: MqttClient[] = [];

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    mappings = mappingsDir({
      'routes/test-provision-token.yaml': provisionRoute('test-provision-token', 'token', 'content.json'),
      'content.json': JSON.stringify(CONTENT),
    });
    st = tempStore();
    proxy = await proxyFor(north, mappings, 'test-provision-token', st.store);
    platform = await platformClient(north);
    await subscribe(platform, '/thngs/#', { qos: 1 });
  });

  after(async () => {
    await closeAll([...clients, platform]);
    await proxy?.close();
    await st?.cleanup();
    await north?.stop();
    mappings?.cleanup();
  });

  /** Anonymous activation as in the spec's example (client id = the device id). */
  async function activate(deviceId: string): Promise<string> {
    const anon = await connectClient(proxy.url, { clientId: deviceId, clean: true });
    clients.push(anon);
    const reply = nextMessage(anon, `$provision/${deviceId}`);
    await publish(anon, `$provision/${deviceId}`, '');
    const token = (await reply).payload.toString();
    anon.end();
    return token;
  }

  it('gives a token on $provision/{deviceId}; the token then authenticates (client id and username empty)', async () => {
    const token = await activate('dev-1');
    assert.match(token, /^[0-9a-f]{40}$/);
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token, clean: true });
    clients.push(dev);
    const seen = collect(platform, '/thngs/dev-1/properties/temp', 1);
    await publish(dev, '$resource/temp', '23.5', { qos: 1 });
    const [m] = await seen;
    const body = JSON.parse(m!.payload.toString()) as Array<{ value: unknown; timestamp: number }>;
    assert.equal(body[0]?.value, 23.5);
    assert.equal(typeof body[0]?.timestamp, 'number');
  });

  it('accepts the token with the device id as client id and username too', async () => {
    const token = await activate('dev-2');
    const dev = await connectClient(proxy.url, { clientId: 'dev-2', username: 'dev-2', password: token });
    clients.push(dev);
    assert.ok(dev.connected);
  });

  it('refuses a wrong token and a token presented under another device id', async () => {
    const token = await activate('dev-3');
    const wrong = await tryConnect(proxy.url, { clientId: '', username: '', password: 'f'.repeat(40) });
    assert.equal(wrong.connack?.returnCode, 4);
    const other = await tryConnect(proxy.url, { clientId: '', username: 'dev-1', password: token });
    assert.notEqual(other.connack?.returnCode, 0);
    assert.ok(other.closed);
  });

  it('refuses a second activation of an existing id: the connection is closed, the first token still works', async () => {
    const token = await activate('dev-4');
    const anon = await connectClient(proxy.url, { clientId: '' });
    clients.push(anon);
    const closed = waitClosed(anon);
    anon.publish('$provision/dev-4', '');
    await closed;
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token });
    clients.push(dev);
    assert.ok(dev.connected);
    // A device that has its identity may not activate one either.
    const closed2 = waitClosed(dev);
    dev.publish('$provision/dev-5', '');
    await closed2;
  });

  it('limits anonymous clients to provisioning: subscriptions and publishes elsewhere', async () => {
    const anon = await connectClient(proxy.url, { clientId: '' });
    clients.push(anon);
    const granted = await subackCodes(anon, ['$provision/dev-9', '$resource/#', '#', '$content']);
    assert.deepEqual(granted, [0, 128, 128, 128]);
    const closed = waitClosed(anon);
    anon.publish('$resource/temp', '1');
    await closed;
    const anon2 = await connectClient(proxy.url, { clientId: '' });
    clients.push(anon2);
    const closed2 = waitClosed(anon2);
    anon2.publish('$content', '');
    await closed2;
  });

  it('takes concurrent activations of one id: exactly one client gets a token', async () => {
    const n = 12;
    const anons = await Promise.all(
      Array.from({ length: n }, () => connectClient(proxy.url, { clientId: '' })),
    );
    clients.push(...anons);
    const outcomes = await Promise.all(
      anons.map(
        (c) =>
          new Promise<string>((resolve) => {
            const timer = setTimeout(() => resolve('timeout'), 5000);
            c.once('message', (_t, p: Buffer) => {
              clearTimeout(timer);
              resolve(`token:${p.toString()}`);
            });
            c.once('close', () => {
              clearTimeout(timer);
              resolve('closed');
            });
            c.publish('$provision/dev-race', '');
          }),
      ),
    );
    const tokens = outcomes.filter((o) => o.startsWith('token:'));
    assert.equal(
      tokens.length,
      1,
      `outcomes: ${outcomes.map((o) => (o.startsWith('token:') ? 'token' : o)).join(',')}`,
    );
    assert.equal(outcomes.filter((o) => o === 'closed').length, n - 1);
  });

  it('answers $content with the configured list, on $content', async () => {
    const token = await activate('dev-6');
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token });
    clients.push(dev);
    const reply = nextMessage(dev, '$content');
    await publish(dev, '$content', '', { qos: 1 });
    const m = await reply;
    assert.deepEqual(JSON.parse(m.payload.toString()), CONTENT);
    assert.equal(m.packet.qos, 0);
  });

  it('with activation turned off, activated devices still connect and anonymous clients are refused', async () => {
    const token = await activate('dev-8');
    const off = provisionRoute('test-provision-off', 'token').replace('  provision: token\n', '');
    assert.ok(!off.includes('provision:'));
    writeFileSync(join(mappings.dir, 'routes/test-provision-off.yaml'), off);
    const second = await proxyFor(north, mappings, 'test-provision-off', st.store);
    try {
      const dev = await connectClient(second.url, { clientId: '', username: '', password: token });
      clients.push(dev);
      assert.ok(dev.connected);
      const anon = await tryConnect(second.url, { clientId: '' });
      assert.equal(anon.connack?.returnCode, 5);
    } finally {
      await second.close();
    }
  });

  it('keeps identities across a restart (file store), hashed: no token in the file', async () => {
    const token = await activate('dev-7');
    await proxy.close();
    await st.store.close();
    const { FileStore } = await import('../../src/store/file.js');
    st.store = new FileStore({ path: st.path });
    proxy = await proxyFor(north, mappings, 'test-provision-token', st.store);
    const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token });
    clients.push(dev);
    assert.ok(dev.connected);
    assert.ok(!readFileSync(st.path, 'utf8').includes(token));
  });
});

describe('Connector south: activation by password (paho, as in the spec)', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  let platform: MqttClient;

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    mappings = mappingsDir({
      'routes/test-provision-password.yaml': provisionRoute('test-provision-password', 'password'),
    });
    st = tempStore();
    proxy = await proxyFor(north, mappings, 'test-provision-password', st.store);
    platform = await platformClient(north);
    await subscribe(platform, '/thngs/#', { qos: 1 });
  });

  after(async () => {
    await closeAll([platform]);
    await proxy?.close();
    await st?.cleanup();
    await north?.stop();
    mappings?.cleanup();
  });

  const ACTIVATE = `
port = int(sys.argv[1]); did = sys.argv[2]; pw = sys.argv[3]
c = make_client("")
got = []
dc = []
c.on_message = lambda cl, u, m: got.append(m.topic)
c.on_disconnect = lambda cl, u, rc: dc.append(rc)
c.connect("127.0.0.1", port, 30)
c.loop_start()
import time
time.sleep(0.3)
info = c.publish("$provision/" + did, pw, qos=1)
info.wait_for_publish(5)
time.sleep(0.5)
c.loop_stop()
print("replies", len(got))
print("closed" if dc else "connected")
`;

  const CONNECT_PUBLISH = `
port = int(sys.argv[1]); did = sys.argv[2]; pw = sys.argv[3]
res = {}
c = make_client("")
c.username_pw_set(did, pw)
c.on_connect = lambda cl, u, f, rc: res.update(rc=rc, sp=f.get("session present"))
c.connect("127.0.0.1", port, 30)
c.loop_start()
import time
for _ in range(50):
    if "rc" in res: break
    time.sleep(0.1)
print("rc", res.get("rc"), "sp", res.get("sp"))
if res.get("rc") == 0:
    c.publish("$resource/humidity", "41", qos=1).wait_for_publish(5)
    c.disconnect()
c.loop_stop()
`;

  it('records a password of 20+ characters, returns nothing, then authenticates username = device id', async () => {
    const pw = '12345678901234567890';
    const a = await runPaho(ACTIVATE, [new URL(proxy.url).port, 'device001', pw]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /replies 0/);
    const seen = collect(platform, '/thngs/device001/properties/humidity', 1);
    const r = await runPaho(CONNECT_PUBLISH, [new URL(proxy.url).port, 'device001', pw]);
    assert.match(r.stdout, /rc 0 sp 1/);
    const [m] = await seen;
    assert.equal((JSON.parse(m!.payload.toString()) as Array<{ value: unknown }>)[0]?.value, 41);
    const bad = await runPaho(CONNECT_PUBLISH, [new URL(proxy.url).port, 'device001', 'x'.repeat(20)]);
    assert.match(bad.stdout, /rc [45] /);
  });

  it('refuses a password shorter than 20 characters: connection closed, nothing recorded', async () => {
    const a = await runPaho(ACTIVATE, [new URL(proxy.url).port, 'device002', 'short-password']);
    assert.match(a.stdout, /closed/);
    assert.equal(await st.store.get('connector', 'device002'), undefined);
  });
});

describe('Connector south: two proxies sharing one Redis store', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let redis: RedisServer;
  const stores: RedisStore[] = [];
  const proxies: TestProxy[] = [];
  const clients: MqttClient[] = [];

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    north = await startEvrythngNorth();
    redis = await startRedis();
    mappings = mappingsDir({
      'routes/test-provision-shared.yaml': provisionRoute('test-provision-shared', 'token'),
    });
    for (let i = 0; i < 2; i++) {
      const store = new RedisStore({ url: redis.url });
      stores.push(store);
      proxies.push(await proxyFor(north, mappings, 'test-provision-shared', store));
    }
  });

  after(async () => {
    await closeAll(clients);
    for (const p of proxies) await p.close();
    for (const s of stores) await s.close();
    await redis?.stop();
    await north?.stop();
    mappings?.cleanup();
  });

  it('a device activated through one replica connects through the other', async () => {
    const anon = await connectClient(proxies[0]!.url, { clientId: '' });
    clients.push(anon);
    const reply = nextMessage(anon, '$provision/shared-1');
    await publish(anon, '$provision/shared-1', '');
    const token = (await reply).payload.toString();
    const dev = await connectClient(proxies[1]!.url, { clientId: '', username: '', password: token });
    clients.push(dev);
    assert.ok(dev.connected);
  });

  it('simultaneous activations of one id on both replicas: exactly one token', async () => {
    const anons = await Promise.all(
      Array.from({ length: 8 }, (_, i) => connectClient(proxies[i % 2]!.url, { clientId: '' })),
    );
    clients.push(...anons);
    const outcomes = await Promise.all(
      anons.map(
        (c) =>
          new Promise<string>((resolve) => {
            const timer = setTimeout(() => resolve('timeout'), 5000);
            c.once('message', () => {
              clearTimeout(timer);
              resolve('token');
            });
            c.once('close', () => {
              clearTimeout(timer);
              resolve('closed');
            });
            c.publish('$provision/shared-race', '');
          }),
      ),
    );
    assert.equal(outcomes.filter((o) => o === 'token').length, 1, outcomes.join(','));
    assert.equal(outcomes.filter((o) => o === 'closed').length, 7);
  });
});

describe('Connector south: no secret in logs or metrics', () => {
  it('activation, connections, refusals and content leave no token or password in logs and metrics', async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    const north = await startEvrythngNorth();
    const mappings = mappingsDir({
      'routes/test-provision-logs.yaml': provisionRoute('test-provision-logs', 'token'),
      'routes/test-provision-logs-pw.yaml': provisionRoute('test-provision-logs-pw', 'password'),
    });
    const st = tempStore();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger({ level: 'trace', format: 'json', destination: sink });
    const clients: MqttClient[] = [];
    const proxy = await startTestProxy(
      { north: { url: north.url }, mapping: { dir: mappings.dir, route: 'test-provision-logs' } },
      { store: st.store, logger },
    );
    const pwProxy = await startTestProxy(
      { north: { url: north.url }, mapping: { dir: mappings.dir, route: 'test-provision-logs-pw' } },
      { store: st.store, logger },
    );
    const PASSWORD = 'a-device-password-long-enough';
    try {
      const anon = await connectClient(proxy.url, { clientId: '' });
      clients.push(anon);
      const reply = nextMessage(anon, '$provision/log-dev');
      await publish(anon, '$provision/log-dev', '');
      const token = (await reply).payload.toString();
      const dev = await connectClient(proxy.url, { clientId: '', username: '', password: token });
      clients.push(dev);
      await publish(dev, '$resource/temp', '1', { qos: 1 });
      await tryConnect(proxy.url, { clientId: '', username: 'log-dev', password: `${token}x` });
      const closed = waitClosed(dev);
      dev.publish('$nope', '1');
      await closed;
      const anon2 = await connectClient(pwProxy.url, { clientId: '' });
      clients.push(anon2);
      await publish(anon2, '$provision/log-dev-2', PASSWORD, { qos: 1 });
      await tryConnect(pwProxy.url, { clientId: '', username: 'log-dev-2', password: `${PASSWORD}-wrong` });
      const metrics = (await proxy.metrics.registry.metrics()) + (await pwProxy.metrics.registry.metrics());
      const text = lines.join('');
      assert.ok(lines.length > 5, 'the logger saw the traffic');
      for (const secret of [token, PASSWORD, API_KEY]) {
        assert.ok(!text.includes(secret), 'a secret reached the log');
        assert.ok(!metrics.includes(secret), 'a secret reached a metric');
      }
    } finally {
      await closeAll(clients);
      await proxy.close();
      await pwProxy.close();
      await st.cleanup();
      await north.stop();
      mappings.cleanup();
    }
  });
});

/** The spec's activate.py and publish.py, with the host, port and CA from argv instead of prompts. */
const SPEC_ACTIVATE = `
import ssl
host = sys.argv[1]; port = int(sys.argv[2]); ca = sys.argv[3]; did = sys.argv[4]
def on_connect(client, userdata, flags, rc):
    provision_str = "$provision/" + did
    client.publish(provision_str, None, qos=0)
def on_message(client, userdata, msg):
    print("Activation succeeded!")
    token = msg.payload.decode()
    print("Token: ", token)
    client.disconnect()
def on_disconnect(client, userdata, rc):
    if rc != 0:
        print("Disconnected with error", rc)
        exit()
client = make_client("")
client.tls_set(ca_certs=ca)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.on_message = on_message
client.connect(host, port)
client.loop_forever()
`;

const SPEC_PUBLISH = `
import ssl, time
host = sys.argv[1]; port = int(sys.argv[2]); ca = sys.argv[3]; token = sys.argv[4]; value = sys.argv[5]
def on_connect(client, userdata, flags, rc):
    res = "temp"
    resource = "$resource/" + res
    print("Publishing to Resource: ", res, "rc", rc, flush=True)
    client.publish(resource, value, qos=0)
def on_message(client, userdata, msg):
    print("Value set, previous was: ", msg.payload.decode(), flush=True)
client = make_client("")
client.tls_set(ca_certs=ca)
client.username_pw_set("", token)
client.on_connect = on_connect
client.on_message = on_message
client.connect(host, port)
client.loop_start()
time.sleep(float(sys.argv[6]))
client.disconnect()
client.loop_stop()
`;

/** The spec's certificate_activate.py: it connects with its certificate and disconnects. */
const SPEC_CERT_ACTIVATE = `
import ssl
host = sys.argv[1]; port = int(sys.argv[2]); ca = sys.argv[3]; certfile = sys.argv[4]; keyfile = sys.argv[5]
def on_connect(client, userdata, flags, rc):
    print("Activation succeeded!", "rc", rc)
    client.disconnect()
def on_disconnect(client, userdata, rc):
    if rc != 0:
        print("Disconnected with error", rc)
        exit()
client = make_client("")
client.tls_set(ca_certs=ca, certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
client.on_connect = on_connect
client.on_disconnect = on_disconnect
client.connect(host, port)
client.loop_forever()
`;

describe("Connector south: the spec's own paho scripts over TLS", () => {
  let north: Broker;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  let platform: MqttClient;
  let pki: TestPki;

  before(async () => {
    process.env.TEST_EVRYTHNG_KEY = API_KEY;
    pki = generateCerts({ clients: ['devicea'] });
    north = await startEvrythngNorth();
    mappings = mappingsDir({
      'routes/test-provision-spec.yaml': provisionRoute('test-provision-spec', 'token'),
    });
    st = tempStore();
    proxy = await proxyFor(north, mappings, 'test-provision-spec', st.store, {
      listen: { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath, tlsCa: pki.ca.certPath },
    });
    platform = await platformClient(north);
    await subscribe(platform, '/thngs/#', { qos: 1 });
  });

  after(async () => {
    await closeAll([platform]);
    await proxy?.close();
    await st?.cleanup();
    await north?.stop();
    mappings?.cleanup();
    pki?.cleanup();
  });

  it('activate.py gets a token; publish.py sends a value with it and receives a change', async () => {
    const port = new URL(proxy.tlsUrl).port;
    const a = await runPaho(SPEC_ACTIVATE, ['localhost', port, pki.ca.certPath, '12345']);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /Activation succeeded!/);
    const token = /Token:\s+([0-9a-f]{40})/.exec(a.stdout)?.[1];
    assert.ok(token, a.stdout);
    const seen = nextMessage(platform, '/thngs/12345/properties/temp', 10_000);
    const run = runPaho(SPEC_PUBLISH, ['localhost', port, pki.ca.certPath, token, '36.6', '2.5']);
    const m = await seen;
    assert.equal((JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value, 36.6);
    await publish(platform, '/thngs/12345/properties/temp', JSON.stringify([{ value: 20 }]), { qos: 1 });
    const p = await run;
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /rc 0/);
    assert.match(p.stdout, /Value set, previous was:\s+20/);
  });

  it('certificate_activate.py activates a certificate by connecting; the device then publishes with it', async () => {
    const port = new URL(proxy.tlsUrl).port;
    const dev = pki.clients.devicea!;
    const a = await runPaho(SPEC_CERT_ACTIVATE, [
      'localhost',
      port,
      pki.ca.certPath,
      dev.certPath,
      dev.keyPath,
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /Activation succeeded! rc 0/);
    // "nothing need to be done": the same certificate, no $provision, and values reach the platform.
    const c = await connectClient(proxy.tlsUrl, {
      ca: pki.ca.cert,
      cert: dev.cert,
      key: dev.key,
      rejectUnauthorized: true,
      servername: 'localhost',
      clientId: '',
      reconnectPeriod: 0,
    });
    try {
      const seen = nextMessage(platform, '/thngs/devicea/properties/temp', 8000);
      await publish(c, '$resource/temp', '7', { qos: 1 });
      assert.equal((JSON.parse((await seen).payload.toString()) as Array<{ value: unknown }>)[0]?.value, 7);
    } finally {
      await closeAll([c]);
    }
  });
});
