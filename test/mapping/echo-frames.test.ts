/**
 * Echoes recognised on the raw north PUBLISH frame, before parsing: the echo set matches a
 * frame against what a session sent (unit), and through the real proxy and a real mosquitto
 * a Connector device's own uplinks, sent back by the broker on the automatic subscription,
 * are dropped and acknowledged (the broker goes on delivering: an unacknowledged QoS 1 echo
 * would hold up its in-flight window), while a real platform update still reaches the device.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt-packet';
import { EchoSet } from '../../src/mapping/echo.js';
import { metricValue, scrape } from '../dialects/kit.js';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  mosquittoPub,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

/** Offsets of a generated MQTT 3.1.1 PUBLISH frame, as the channel computes them. */
function frameOf(topic: string, payload: Buffer, qos: 0 | 1): [Buffer, number, number, number] {
  const frame = mqtt.generate(
    { cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos ? { messageId: 9 } : {}) },
    { protocolVersion: 4 },
  );
  let off = 1;
  while ((frame[off]! & 0x80) !== 0) off++;
  off++;
  const ts = off + 2;
  const te = ts + frame.readUInt16BE(off);
  return [frame, ts, te, qos ? te + 2 : te];
}

describe('echo set on raw frames', () => {
  test('a frame of what was added is taken once; another payload or topic is not', () => {
    const e = new EchoSet();
    const topic = '/thngs/T1/properties/temp';
    const body = Buffer.from('[{"value":23,"timestamp":1700000000000}]');
    e.add(topic, body);
    assert.equal(e.takeFrame(...frameOf(topic, Buffer.from('[{"value":24,"timestamp":1}]'), 1)), false);
    assert.equal(e.takeFrame(...frameOf('/thngs/T2/properties/temp', body, 1)), false);
    assert.equal(e.takeFrame(...frameOf(topic, body, 1)), true);
    assert.equal(e.takeFrame(...frameOf(topic, body, 1)), false, 'taken only once');
    assert.equal(e.entries, 0);
  });

  test('QoS 0 frames, non-ASCII topics and payloads over the inline size match as well', () => {
    const e = new EchoSet();
    const big = Buffer.alloc(5000, 7);
    e.add('/thngs/T1/properties/tempé', Buffer.from('1'));
    e.add('/thngs/T1/properties/blob', big);
    e.add('/thngs/T1/properties/blob', big);
    assert.equal(e.takeFrame(...frameOf('/thngs/T1/properties/tempé', Buffer.from('1'), 0)), true);
    assert.equal(e.takeFrame(...frameOf('/thngs/T1/properties/blob', Buffer.alloc(5000, 8), 0)), false);
    assert.equal(e.takeFrame(...frameOf('/thngs/T1/properties/blob', big, 1)), true);
    assert.equal(e.takeFrame(...frameOf('/thngs/T1/properties/blob', big, 0)), true, 'a multiset: twice');
    assert.equal(e.entries, 0);
  });
});

describe('echo set as a multiset (queue in order, table otherwise)', () => {
  test('against a plain list: random adds, takes (frames and strings), out of order, lost, wills', () => {
    // A deterministic pseudo-random sequence (LCG): the same operations on every run.
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const topics = ['/thngs/T1/properties/a', '/thngs/T1/properties/b', '/thngs/T1/properties/é'];
    const payloads = ['1', '2', '"x"', 'x'.repeat(300)].map((p) => Buffer.from(p));
    const e = new EchoSet();
    const model: Array<[string, Buffer]> = [];
    for (let step = 0; step < 20_000; step++) {
      const op = rnd(10);
      const t = topics[rnd(topics.length)] as string;
      const p = payloads[rnd(payloads.length)] as Buffer;
      if (op < 4) {
        e.add(t, p);
        model.push([t, p]);
      } else if (op < 9) {
        // Most takes are the oldest entry (in order), some anything.
        const [ot, opay] = op < 7 && model.length > 0 ? (model[0] as [string, Buffer]) : [t, p];
        const i = model.findIndex(([mt, mp]) => mt === ot && mp.equals(opay));
        const got = op % 2 === 0 ? e.takeFrame(...frameOf(ot, opay, (step % 2) as 0 | 1)) : e.take(ot, opay);
        assert.equal(got, i >= 0, `step ${step}`);
        if (i >= 0) model.splice(i, 1);
      } else {
        const n = rnd(3);
        e.forgetLast(n);
        model.splice(Math.max(0, model.length - n), n);
      }
      assert.equal(e.entries, model.length, `entries at step ${step}`);
      if (step % 5000 === 4999) e.settle();
    }
  });

  test('full: the oldest entries go first, queued or keyed', () => {
    const e = new EchoSet();
    const p = (i: number) => Buffer.from(String(i));
    e.add('t', p(-1));
    e.take('t', p(-2)); // no echo: the queue moves into the table
    for (let i = 0; i < 65_536; i++) e.add('t', p(i));
    assert.equal(e.entries, 65_536);
    assert.equal(e.take('t', p(-1)), false, 'the oldest (in the table) went first');
    e.add('t', p(65_536));
    assert.equal(e.take('t', p(0)), false, 'then the oldest of the queue');
    assert.equal(e.take('t', p(1)), true);
    assert.equal(e.take('t', p(65_536)), true);
    assert.equal(e.entries, 65_534);
  });

  test('bounded by bytes: large payloads, and small views into large reads, are not all kept', () => {
    /** Bytes of the payload buffers the queue keeps alive, each underlying buffer once. */
    const held = (e: EchoSet): number => {
      const q = e as unknown as { qPayloads?: Buffer[]; qHead: number };
      const seen = new Set<ArrayBufferLike>();
      let n = 0;
      for (const b of (q.qPayloads ?? []).slice(q.qHead))
        if (!seen.has(b.buffer)) {
          seen.add(b.buffer);
          n += b.buffer.byteLength;
        }
      return n;
    };
    const big = new EchoSet();
    for (let i = 0; i < 1000; i++) {
      const p = Buffer.allocUnsafeSlow(16 * 1024).fill(i & 0xff);
      p.writeUInt32BE(i);
      big.add('/thngs/T1/properties/temp', p);
    }
    assert.ok(held(big) <= 1024 * 1024 + 64 * 1024, `${held(big)} payload bytes held`);
    assert.ok(big.bytes <= 6 * 1024 * 1024);
    assert.equal(big.entries, 1000, 'none lost: large payloads are kept by digest');
    const last = Buffer.allocUnsafeSlow(16 * 1024).fill(999 & 0xff);
    last.writeUInt32BE(999);
    assert.equal(big.take('/thngs/T1/properties/temp', last), true);
    const other = Buffer.from(last);
    other[100] = 1;
    assert.equal(big.take('/thngs/T1/properties/temp', other), false, 'a digest matches only the same bytes');

    const views = new EchoSet();
    for (let i = 0; i < 1000; i++) {
      const read = Buffer.alloc(64 * 1024);
      read.write(`[{"value":${i}}]`, 100);
      views.add('$resource/temp', read.subarray(100, 100 + `[{"value":${i}}]`.length));
    }
    assert.ok(held(views) <= 1024 * 1024 + 64 * 1024, `${held(views)} bytes of reads held`);
    assert.equal(views.take('$resource/temp', Buffer.from('[{"value":0}]')), true);
    assert.equal(views.take('$resource/temp', Buffer.from('[{"value":999}]')), true);

    const keys = new EchoSet();
    const topic = `$resource/${'k'.repeat(200)}`;
    for (let i = 0; i < 65_536; i++) keys.add(topic, Buffer.from(`${'v'.repeat(200)}${i}`));
    keys.settle();
    assert.ok(keys.bytes <= 4 * 1024 * 1024, `${keys.bytes} bytes of keys`);
    assert.ok(keys.entries < 65_536, 'the oldest went to keep within the byte bound');
    assert.equal(keys.take(topic, Buffer.from(`${'v'.repeat(200)}65535`)), true, 'the newest stay');
  });
});

const TOKEN = 'e0e0e0e0e948b94841820ea50868a2490632d78f';
const API_KEY = 'evt-api-key-echo-0123';

describe('echoes through the proxy (Connector → EVRYTHNG, mosquitto)', () => {
  let broker: MosquittoBroker | undefined;
  let proxy: TestProxy | undefined;
  let dir = '';
  const clients: MqttClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mdp-echo-'));
    const file = join(dir, 'credentials.yaml');
    await writeFile(
      file,
      `- south: { deviceId: "dev-echo", token: "${TOKEN}" }\n  north: { thngId: UECHO, apiKey: "${API_KEY}" }\n`,
      {
        mode: 0o600,
      },
    );
    // mosquitto's default in-flight window (20): unacknowledged QoS 1 echoes would block it.
    broker = await startMosquitto({ passwords: { authorization: API_KEY, observer: 'observer-pw' } });
    proxy = await startTestProxy({
      north: { url: broker.url },
      mapping: { dir: MAPPINGS_DIR, route: 'connector-to-evrythng', credentials: file },
    });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await broker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('own uplinks come back from the broker and are dropped and acknowledged; a real update gets through', async () => {
    assert.ok(broker && proxy);
    const observer = await connectClient(broker.url, {
      username: 'observer',
      password: 'observer-pw',
      clientId: 'obs-echo',
    });
    clients.push(observer);
    await subscribe(observer, '/thngs/UECHO/properties/#', { qos: 1 });
    const device = await connectClient(proxy.url, {
      clientId: 'dev-echo',
      username: 'dev-echo',
      password: TOKEN,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(device);
    const got: string[] = [];
    device.on('message', (topic: string, payload: Buffer) => got.push(`${topic} ${payload.toString()}`));
    // The automatic north SUBSCRIBE goes out right after the CONNACK, before any uplink.

    const N = 60;
    const seen = collect(observer, '/thngs/UECHO/properties/+', N + 5, 10_000);
    for (let i = 0; i < N; i++) await publish(device, '$resource/temp', String(i), { qos: 1 });
    for (let i = 0; i < 5; i++) await publish(device, '$resource/hum', String(40 + i), { qos: 0 });
    assert.equal((await seen).length, N + 5);

    const echoes = async () =>
      metricValue(
        await scrape(proxy!),
        'mqtt_proxy_messages_total',
        'route="connector-to-evrythng",direction="downlink",rule="property",outcome="dropped",reason="echo"',
      );
    await waitFor(async () => (await echoes()) >= N + 5, 10_000, 'every echo dropped');
    assert.equal(await echoes(), N + 5);
    // Translation time is sampled 1 message in 16: 65 uplinks give at least 4 observations.
    const timed = metricValue(
      await scrape(proxy),
      'mqtt_proxy_translate_duration_seconds_count',
      'route="connector-to-evrythng",direction="uplink"',
    );
    assert.ok(timed >= 4, `translate_duration_seconds_count ${timed}`);

    // After 60 QoS 1 echoes, three times the broker's window: a platform update still arrives.
    const update = collect(device, '$resource/target', 1, 10_000);
    const r = await mosquittoPub({
      url: broker.url,
      topic: '/thngs/UECHO/properties/target',
      message: '[{"value":19.5}]',
      qos: 1,
      extra: ['-u', 'observer', '-P', 'observer-pw', '-V', 'mqttv311'],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await update)[0]?.payload.toString(), '19.5');
    assert.deepEqual(got, ['$resource/target 19.5'], 'the device got none of its own uplinks back');
  });
});
