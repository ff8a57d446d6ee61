/**
 * Pass-through over every south listener (TCP, WebSocket, TLS, secure WebSocket) to a real
 * mosquitto: MQTT.js at 3.1.1 and 5 publishes and subscribes at QoS 0, 1 and 2; a subscriber
 * on mosquitto itself sees what went through the proxy; mosquitto_pub/mosquitto_sub and paho
 * work through it too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IClientOptions } from 'mqtt';
import type { RouteHandler } from '../../src/core/contract.js';
import { passThroughRoute } from '../../src/routes/passthrough.js';
import { generateCerts, type TestPki } from '../helpers/certs.js';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  mosquittoPub,
  mosquittoSub,
  publish,
  runPaho,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

describe('core: pass-through over every listener', () => {
  let broker: MosquittoBroker;
  let pki: TestPki;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startMosquitto();
    pki = generateCerts();
    proxy = await startTestProxy({
      north: { url: broker.url },
      listen: { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath },
    });
  });
  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
    pki?.cleanup();
  });

  const open = async (url: string, opts: IClientOptions = {}): Promise<MqttClient> => {
    const c = await connectClient(url, opts);
    clients.push(c);
    return c;
  };

  const listeners: Array<[string, () => string, () => IClientOptions]> = [
    ['tcp', () => proxy.url, () => ({})],
    ['ws', () => proxy.wsUrl, () => ({})],
    ['tls', () => proxy.tlsUrl, () => ({ ca: pki.ca.cert, rejectUnauthorized: true })],
    ['wss', () => proxy.wssUrl, () => ({ ca: pki.ca.cert, rejectUnauthorized: true })],
  ];

  for (const [name, url, tlsOpts] of listeners) {
    for (const protocolVersion of [4, 5] as const) {
      it(`${name}, MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: QoS 0, 1 and 2 both ways, seen on mosquitto`, async () => {
        const base = `lt/${name}/${protocolVersion}`;
        const sub = await open(url(), {
          ...tlsOpts(),
          protocolVersion,
          clientId: `sub-${name}-${protocolVersion}`,
        });
        const pub = await open(url(), {
          ...tlsOpts(),
          protocolVersion,
          clientId: `pub-${name}-${protocolVersion}`,
        });
        const watcher = await open(broker.url, { protocolVersion });
        const granted = await subscribe(sub, `${base}/+`, { qos: 2 });
        assert.equal(granted[0]?.qos, 2);
        await subscribe(watcher, `${base}/+`, { qos: 2 });
        const gotSouth = collect(sub, `${base}/+`, 3, 8000);
        const gotNorth = collect(watcher, `${base}/+`, 3, 8000);
        for (const qos of [0, 1, 2] as const) {
          await publish(pub, `${base}/q${qos}`, `payload-${qos}`, { qos });
        }
        const south = (await gotSouth).sort((a, b) => a.topic.localeCompare(b.topic));
        assert.deepEqual(
          south.map((m) => [m.topic, m.payload.toString(), m.packet.qos]),
          [
            [`${base}/q0`, 'payload-0', 0],
            [`${base}/q1`, 'payload-1', 1],
            [`${base}/q2`, 'payload-2', 2],
          ],
        );
        const north = (await gotNorth).map((m) => m.payload.toString()).sort();
        assert.deepEqual(north, ['payload-0', 'payload-1', 'payload-2']);
      });
    }
  }

  it('mosquitto_pub and mosquitto_sub over TCP and TLS (MQTT 3.1.1 and 5)', async () => {
    const tcpPort = new URL(proxy.url).port;
    const tlsPort = new URL(proxy.tlsUrl).port;
    const tls = ['--cafile', pki.ca.certPath];
    for (const [port, extra, version] of [
      [tcpPort, [], 'mqttv311'],
      [tlsPort, tls, 'mqttv5'],
    ] as const) {
      const topic = `cli/${port}`;
      const sub = mosquittoSub({
        url: `mqtt://127.0.0.1:${port}`,
        topics: [topic],
        count: 2,
        qos: 1,
        version,
        extra: [...extra],
      });
      await sub.ready;
      for (const [i, qos] of [1, 2].entries()) {
        const r = await mosquittoPub({
          url: `mqtt://127.0.0.1:${port}`,
          topic,
          message: `m${i}`,
          qos: qos as 1 | 2,
          version,
          extra: [...extra],
        });
        assert.equal(r.code, 0, r.stderr);
      }
      const res = await sub.result;
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(
        res.messages.map((m) => m.payload),
        ['m0', 'm1'],
      );
    }
  });

  it('paho-mqtt over TCP and WebSocket, MQTT 3.1.1 and 5', async () => {
    const script = `
import time
host, port, transport, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
proto = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
got = []
c = make_client("paho-%s-%s" % (transport, version), protocol=proto, transport=transport)
if transport == "websockets":
    c.ws_set_options(path="/mqtt")
c.on_message = lambda cl, u, m: got.append((m.topic, m.payload.decode(), m.qos))
c.connect(host, port, 30)
c.loop_start()
topic = "paho/%s/%s" % (transport, version)
r, mid = c.subscribe(topic, qos=2)
time.sleep(0.3)
for q in (0, 1, 2):
    c.publish(topic, "p%d" % q, qos=q).wait_for_publish(5)
for _ in range(100):
    if len(got) >= 3:
        break
    time.sleep(0.05)
c.disconnect()
c.loop_stop()
print(sorted(got))
`;
    const cases: Array<[string, string, string]> = [
      [new URL(proxy.url).port, 'tcp', '4'],
      [new URL(proxy.wsUrl).port, 'websockets', '5'],
    ];
    for (const [port, transport, version] of cases) {
      const r = await runPaho(script, ['127.0.0.1', port, transport, version]);
      assert.equal(r.code, 0, r.stderr);
      const topic = `paho/${transport}/${version}`;
      assert.equal(r.stdout.trim(), `[('${topic}', 'p0', 0), ('${topic}', 'p1', 1), ('${topic}', 'p2', 2)]`);
    }
  });
});

describe('core: TLS client certificates', () => {
  it('the verified certificate CN reaches the route; an unknown CA gives none', async () => {
    const broker = await startMosquitto();
    const pki = generateCerts({ clients: ['device-42'] });
    const seen: Array<string | undefined> = [];
    const base = passThroughRoute();
    const route: RouteHandler = {
      ...base,
      openSession(hello) {
        seen.push(hello.peerCommonName);
        return base.openSession(hello);
      },
    };
    const proxy = await startTestProxy(
      {
        north: { url: broker.url },
        listen: { tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath, tlsCa: pki.ca.certPath },
      },
      { route },
    );
    const clients: MqttClient[] = [];
    try {
      const device = pki.clients['device-42']!;
      const tlsBase = { ca: pki.ca.cert, rejectUnauthorized: true };
      clients.push(await connectClient(proxy.tlsUrl, { ...tlsBase, cert: device.cert, key: device.key }));
      clients.push(await connectClient(proxy.wssUrl, { ...tlsBase, cert: device.cert, key: device.key }));
      clients.push(
        await connectClient(proxy.tlsUrl, {
          ...tlsBase,
          cert: pki.rogue.client.cert,
          key: pki.rogue.client.key,
        }),
      );
      clients.push(await connectClient(proxy.tlsUrl, tlsBase));
      assert.deepEqual(seen, ['device-42', 'device-42', undefined, undefined]);
    } finally {
      await closeAll(clients);
      await proxy.close(200);
      await broker.stop();
      pki.cleanup();
    }
  });
});
