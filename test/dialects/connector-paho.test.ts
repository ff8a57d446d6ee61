/**
 * The Connector face with paho-mqtt (/usr/bin/python3), as the spec's own examples use it, and
 * authentication three ways: token, password (username = device id) and TLS client
 * certificate (CN = device id, no username or password). Also the multi-resource topics:
 * `$resource` / `$resource/` objects and `$resource.batch` with µs timestamps, seen north as
 * EVRYTHNG property lists in ms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
  TOKENS,
} from './connector-env.js';

/** One paho session: connect (argv: port, username, password), then run a case, print results. */
const PAHO = `
import time, json
port = int(sys.argv[1]); user = sys.argv[2]; pw = sys.argv[3]; case = sys.argv[4]
res = {"dc": 0}
c = make_client("")
if user or pw:
    c.username_pw_set(user, pw)
def on_connect(cl, u, flags, rc):
    res["rc"] = rc
    res["sp"] = flags.get("session present")
def on_subscribe(cl, u, mid, granted):
    res["granted"] = list(granted)
def on_disconnect(cl, u, rc):
    res["dc"] += 1
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_disconnect = on_disconnect
c.connect("127.0.0.1", port, 30)
c.loop_start()
def wait(pred, secs=5):
    for _ in range(int(secs * 20)):
        if pred(): return True
        time.sleep(0.05)
    return False
wait(lambda: "rc" in res)
if res.get("rc") == 0:
    if case == "subscribe":
        c.subscribe([("#", 1), ("$content", 1), ("$resource/#", 2), ("$resource/+", 0), ("$resource/temp", 1), ("$provision/dev-p", 0), ("other/topic", 0), ("$provision/dev-a", 0)])
        wait(lambda: "granted" in res)
    elif case == "bad-topic":
        c.publish("devices/dev-p/temp", "1", qos=1)
        wait(lambda: res["dc"] > 0, 3)
    elif case == "qos2":
        info = c.publish("$resource/level", "3", qos=2)
        time.sleep(0.5)
        res["completed"] = info.is_published()
    elif case == "publish":
        c.publish("$resource/humidity", "55", qos=1).wait_for_publish(5)
time.sleep(0.2)
print(json.dumps(res), flush=True)
c.disconnect()
c.loop_stop()
`;

interface PahoResult {
  rc?: number;
  sp?: number;
  dc: number;
  granted?: number[];
  completed?: boolean;
}

describe('Connector face with paho and three authentication types', () => {
  let north: Broker;
  let mappings: MappingsDir;
  let proxy: TestProxy;
  let platform: MqttClient;
  let pki: TestPki;
  const clients: MqttClient[] = [];

  before(async () => {
    pki = generateCerts({ clients: ['cert-dev', 'stranger'] });
    north = await startEvrythngNorth();
    mappings = quirksMappings();
    proxy = await proxyFor(north, mappings, 'test-connector', undefined, {
      listen: { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath, tlsCa: pki.ca.certPath },
    });
    platform = await platformClient(north);
    await subscribe(platform, '#', { qos: 1 });
  });

  after(async () => {
    await closeAll([...clients, platform]);
    await proxy?.close();
    await north?.stop();
    mappings?.cleanup();
    pki?.cleanup();
  });

  const port = () => new URL(proxy.url).port;
  async function paho(user: string, pw: string, which: string): Promise<PahoResult> {
    const r = await runPaho(PAHO, [port(), user, pw, which]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as PahoResult;
  }

  it('password: username = device id; session present 1; publishes reach north', async () => {
    const seen = nextMessage(platform, '/thngs/THNGP/properties/humidity', 8000);
    const r = await paho('dev-p', PASSWORD_P, 'publish');
    assert.equal(r.rc, 0);
    assert.equal(r.sp, 1);
    const body = JSON.parse((await seen).payload.toString()) as Array<{ value: unknown }>;
    assert.equal(body[0]?.value, 55);
    assert.equal((await paho('dev-p', 'wrong-password-of-some-length', 'none')).rc, 4);
  });

  it('token: empty username, the token as password (paho)', async () => {
    const r = await paho('', TOKENS.a, 'none');
    assert.equal(r.rc, 0);
    assert.equal(r.sp, 1);
  });

  it('SUBSCRIBE: QoS 0 granted to the allowed filters, 0x80 to the rest (paho)', async () => {
    const r = await paho('dev-p', PASSWORD_P, 'subscribe');
    assert.deepEqual(r.granted, [0, 0, 0, 0, 0, 0, 128, 128]);
    assert.equal(r.dc, 0);
  });

  it('a publish outside the fixed set disconnects (paho)', async () => {
    const r = await paho('dev-p', PASSWORD_P, 'bad-topic');
    assert.equal(r.rc, 0);
    assert.ok(r.dc >= 1);
  });

  it('QoS 2 is handled as QoS 0: the flow never completes, the value still arrives (paho)', async () => {
    const seen = nextMessage(platform, '/thngs/THNGP/properties/level', 8000);
    const r = await paho('dev-p', PASSWORD_P, 'qos2');
    assert.equal(r.completed, false);
    assert.equal((await seen).packet.qos, 0);
  });

  it('certificate: CN = device id, no username or password', async () => {
    const cert = pki.clients['cert-dev']!;
    const opts = {
      ca: pki.ca.cert,
      cert: cert.cert,
      key: cert.key,
      rejectUnauthorized: true,
      servername: 'localhost',
    };
    const c = await connectClient(proxy.tlsUrl, { ...opts, clientId: '' });
    clients.push(c);
    const seen = nextMessage(platform, '/thngs/THNGC/properties/temp');
    await publish(c, '$resource/temp', '4', { qos: 1 });
    assert.equal((JSON.parse((await seen).payload.toString()) as Array<{ value: unknown }>)[0]?.value, 4);
    // A certificate of the right CA for a device the route does not know: refused.
    const other = pki.clients.stranger!;
    const r = await tryConnect(proxy.tlsUrl, { ...opts, cert: other.cert, key: other.key, clientId: '' });
    assert.equal(r.connack?.returnCode, 5);
    // A certificate from another CA proves nothing: anonymous, refused.
    const rogue = await tryConnect(proxy.tlsUrl, {
      ...opts,
      cert: pki.rogue.client.cert,
      key: pki.rogue.client.key,
      clientId: '',
    });
    assert.notEqual(rogue.connack?.returnCode, 0);
  });

  it('$resource and $resource/ objects become one property publish per alias', async () => {
    const c = await connectClient(proxy.url, { clientId: 'dev-a', username: 'dev-a', password: TOKENS.a });
    clients.push(c);
    const seen = collect(platform, '/thngs/THNGA/properties/+', 4);
    await publish(c, '$resource', JSON.stringify({ temp: 20.5, mode: 'eco' }), { qos: 1 });
    await publish(c, '$resource/', JSON.stringify({ temp: 21, on: true }), { qos: 1 });
    const got = (await seen).map((m) => [
      m.topic,
      (JSON.parse(m.payload.toString()) as Array<{ value: unknown }>)[0]?.value,
    ]);
    assert.deepEqual(got, [
      ['/thngs/THNGA/properties/temp', 20.5],
      ['/thngs/THNGA/properties/mode', 'eco'],
      ['/thngs/THNGA/properties/temp', 21],
      ['/thngs/THNGA/properties/on', true],
    ]);
  });

  it('$resource.batch timestamps in µs arrive in ms', async () => {
    const c = await connectClient(proxy.url, { clientId: '', username: '', password: TOKENS.a });
    clients.push(c);
    const t1 = 1_700_000_000_123_456;
    const t2 = 1_700_000_060_000_789;
    const batch = [
      { timestamp: t1, values: { temp: 19.5, hum: 40 } },
      { timestamp: t2, values: { temp: 19.75 } },
    ];
    // One property list per alias, holding every point of that alias.
    const seen = collect(platform, '/thngs/THNGA/properties/+', 2);
    await publish(c, '$resource.batch', JSON.stringify(batch), { qos: 1 });
    const points = (await seen).flatMap((m) =>
      (JSON.parse(m.payload.toString()) as Array<{ value: unknown; timestamp: number }>).map((p) => [
        m.topic.split('/').pop(),
        p.value,
        p.timestamp,
      ]),
    );
    points.sort((a, b) => String(a[0]).localeCompare(String(b[0])) || Number(a[2]) - Number(b[2]));
    assert.deepEqual(points, [
      ['hum', 40, 1_700_000_000_123],
      ['temp', 19.5, 1_700_000_000_123],
      // ms = µs / 1000, rounded to the nearest ms.
      ['temp', 19.75, 1_700_000_060_001],
    ]);
  });
});
