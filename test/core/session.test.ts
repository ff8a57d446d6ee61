/**
 * The session pipeline on in-memory streams: an MQTT.js client talks to a Session over a
 * Duplex pair (no socket on the south side), the Session talks to a real mosquitto north. A
 * small test route exercises what the core does with a RouteHandler's answers: refusal codes,
 * topic rewriting both ways, drop and disconnect verdicts, fan-out acknowledged only when every
 * north publish is, fixed SUBACK codes, and the retain/QoS 2 quirks.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IPublishPacket, ISubscribePacket } from 'mqtt-packet';
import { type Outcome, PASS_QUIRKS, type Quirks, type RouteHandler } from '../../src/core/contract.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import type { SessionContext } from '../../src/session/context.js';
import { PacketMeter } from '../../src/session/meter.js';
import { Session } from '../../src/session/session.js';
import { compileTransport } from '../../src/upstream/transport.js';
import {
  closeAll,
  collect,
  connectClient,
  gather,
  nextMessage,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';

/**
 * One end of an in-memory byte pipe; closing one end ends the other (no error). Not half
 * open, as a TCP socket: the end of what it reads ends it, so the client sees the close.
 */
class MemoryEnd extends Duplex {
  peer?: MemoryEnd;
  constructor() {
    super({ allowHalfOpen: false });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.peer?.push(chunk);
    cb();
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.peer?.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.push(null);
    cb(err);
  }
}

function memoryPair(): [MemoryEnd, MemoryEnd] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** South `dev/...` ↔ north `plat/...`; special first levels choose a verdict. */
function testRoute(quirks: Quirks = PASS_QUIRKS): RouteHandler {
  const toNorth = (t: string): string => t.replace(/^dev\//, 'plat/');
  const up = (p: IPublishPacket): Outcome => {
    const base = { payload: p.payload as Buffer, qos: p.qos, retain: p.retain };
    if (p.topic.startsWith('dev/drop/')) return { verdict: 'drop', reason: 'test_drop' };
    if (p.topic.startsWith('dev/kick/')) return { verdict: 'disconnect', reason: 'test_kick' };
    if (p.topic.startsWith('dev/fan/')) {
      return {
        north: [1, 2, 3].map((i) => ({ ...base, topic: `${toNorth(p.topic)}/${i}` })),
        verdict: 'continue',
      };
    }
    return { north: [{ ...base, topic: toNorth(p.topic) }], verdict: 'continue' };
  };
  return {
    name: 'test',
    passThrough: false,
    async openSession(hello) {
      if (hello.connect.username === 'nobody') {
        return { accept: false, returnCode: 5, reasonCode: 0x87, reason: 'test_refused' };
      }
      return {
        accept: true,
        north: { mode: 'direct', connect: hello.connect },
        quirks,
        dialect: 'test',
        mapper: {
          uplink: up,
          downlink: (p) => ({
            south: [
              {
                topic: p.topic.replace(/^plat\//, 'dev/'),
                payload: p.payload as Buffer,
                qos: p.qos,
                retain: p.retain,
              },
            ],
          }),
          subscribe: (p: ISubscribePacket) => ({
            north: p.subscriptions
              .filter((s) => !s.topic.startsWith('dev/secret'))
              .map((s) => ({ topic: toNorth(s.topic), qos: s.qos })),
            granted: p.subscriptions.map((s, i) =>
              s.topic.startsWith('dev/secret') ? { code: 0x80 } : { from: [i] },
            ),
          }),
          unsubscribe: (p) => ({ north: p.unsubscriptions.map(toNorth) }),
          autoSubscribe: () => [],
          close: () => undefined,
        },
      };
    },
  };
}

describe('core: session pipeline on in-memory streams', () => {
  let broker: MosquittoBroker;
  const clients: MqttClient[] = [];
  const metrics = createMetrics();
  let route = testRoute();
  const ctx: SessionContext = {
    route: () => route,
    transport: (url) => compileTransport(url ?? broker.url),
    limits: {
      maxPacketBytes: 1 << 20,
      connectTimeoutMs: 5000,
      northConnectTimeoutMs: 5000,
      gatewayInflight: 1000,
    },
    metrics,
    meter: new PacketMeter(metrics),
    log: silentLogger,
    sessions: new Set(),
  };

  /** An MQTT.js client whose stream is one end of an in-memory pair; the Session has the other. */
  const inMemory = (opts: IClientOptions = {}): MqttClient => {
    const [clientEnd, sessionEnd] = memoryPair();
    new Session(sessionEnd, { listener: 'memory' }, ctx);
    const c = new mqtt.MqttClient(() => clientEnd, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    clients.push(c);
    return c;
  };
  const online = (c: MqttClient): Promise<MqttClient> =>
    new Promise((resolve, reject) => {
      c.once('connect', () => resolve(c));
      c.once('error', reject);
      c.once('close', () => reject(new Error('closed before CONNACK')));
    });

  before(async () => {
    broker = await startMosquitto();
  });
  after(async () => {
    await closeAll(clients);
    await broker?.stop();
  });

  it('a refusal from the route becomes CONNACK 5 / 0x87 and no north connection', async () => {
    for (const protocolVersion of [4, 5] as const) {
      const c = inMemory({ protocolVersion, username: 'nobody' });
      const code = await new Promise<number | undefined>((resolve) => {
        c.once('error', (e) => resolve((e as Error & { code?: number }).code));
        c.once('connect', () => resolve(undefined));
      });
      assert.equal(code, protocolVersion === 5 ? 0x87 : 5);
    }
    assert.equal(broker.log().includes('nobody'), false, 'nothing reached north');
  });

  it('rewrites topics both ways and counts packets', async () => {
    const c = await online(inMemory({ clientId: 'mem-1' }));
    const watcher = await connectClient(broker.url);
    clients.push(watcher);
    await subscribe(watcher, 'plat/#', { qos: 1 });
    await subscribe(c, 'dev/down/+', { qos: 1 });
    const north = nextMessage(watcher, 'plat/up/1');
    await publish(c, 'dev/up/1', 'hello', { qos: 1 });
    assert.equal((await north).payload.toString(), 'hello');
    const south = nextMessage(c, 'dev/down/+');
    await publish(watcher, 'plat/down/7', 'cmd', { qos: 1 });
    const m = await south;
    assert.equal(m.topic, 'dev/down/7');
    const counted = (await metrics.packetsTotal.get()).values.filter(
      (v) => v.labels.direction === 'south_in' && v.labels.type === 'publish',
    );
    assert.ok((counted[0]?.value ?? 0) >= 1, 'south_in publish counted');
  });

  it("MQTT 5 topic aliases within the CONNACK's maximum are resolved before the topic is rewritten", async () => {
    const c = inMemory({ clientId: 'mem-alias', protocolVersion: 5 });
    const connack = await new Promise<{ properties?: { topicAliasMaximum?: number } }>((resolve, reject) => {
      c.once('connect', resolve);
      c.once('error', reject);
    });
    const max = connack.properties?.topicAliasMaximum ?? 0;
    assert.ok(max >= 2, `the north's Topic Alias Maximum reaches the client (${max})`);
    const watcher = await connectClient(broker.url);
    clients.push(watcher);
    await subscribe(watcher, 'plat/alias/#', { qos: 1 });
    const got = collect(watcher, 'plat/alias/#', 2, 5000);
    await publish(c, 'dev/alias/x', 'first', { qos: 1, properties: { topicAlias: max } });
    await publish(c, '', 'second', { qos: 1, properties: { topicAlias: max } });
    assert.deepEqual(
      (await got).map((m) => [m.topic, m.payload.toString()]),
      [
        ['plat/alias/x', 'first'],
        ['plat/alias/x', 'second'],
      ],
    );
  });

  it('drop is acknowledged and goes nowhere; disconnect closes without acknowledging', async () => {
    const c = await online(inMemory({ clientId: 'mem-2' }));
    const watcher = await connectClient(broker.url);
    clients.push(watcher);
    await subscribe(watcher, '#', { qos: 1 });
    const seen = gather(watcher, '#', 500);
    await publish(c, 'dev/drop/x', 'gone', { qos: 1 });
    assert.deepEqual(await seen, []);
    const acks: string[] = [];
    c.on('packetreceive', (p) => acks.push(p.cmd));
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('dev/kick/x', 'bye', { qos: 1 });
    await closed;
    assert.equal(acks.includes('puback'), false);
  });

  it('fan-out: the QoS 1 PUBACK comes after all three north publishes', async () => {
    const c = await online(inMemory({ clientId: 'mem-3', protocolVersion: 5 }));
    const watcher = await connectClient(broker.url);
    clients.push(watcher);
    await subscribe(watcher, 'plat/fan/#', { qos: 1 });
    const got = collect(watcher, 'plat/fan/#', 3);
    await publish(c, 'dev/fan/a', 'x', { qos: 1 });
    assert.deepEqual((await got).map((m) => m.topic).sort(), [
      'plat/fan/a/1',
      'plat/fan/a/2',
      'plat/fan/a/3',
    ]);
  });

  it('fixed SUBACK codes from the plan: 0x80 for a refused filter, granted QoS for the others', async () => {
    const c = await online(inMemory({ clientId: 'mem-4' }));
    const suback = new Promise<number[]>((resolve) =>
      c.on('packetreceive', (p) => {
        if (p.cmd === 'suback') resolve([...p.granted] as number[]);
      }),
    );
    c.subscribe({ 'dev/ok': { qos: 1 }, 'dev/secret/x': { qos: 1 } }, () => undefined);
    assert.deepEqual(await suback, [1, 0x80]);
  });

  it('quirks: retain ignored and QoS 2 downgraded to QoS 1 on the way north', async () => {
    route = testRoute({ ...PASS_QUIRKS, retain: 'ignore', qos2: 'as_qos1' });
    try {
      const c = await online(inMemory({ clientId: 'mem-5' }));
      const watcher = await connectClient(broker.url);
      clients.push(watcher);
      await subscribe(watcher, 'plat/q/#', { qos: 2 });
      const got = nextMessage(watcher, 'plat/q/#');
      await publish(c, 'dev/q/1', 'x', { qos: 2, retain: true });
      const m = await got;
      assert.equal(m.packet.qos, 1);
      assert.equal(m.packet.retain, false);
      const late = await connectClient(broker.url);
      clients.push(late);
      await subscribe(late, 'plat/q/#', { qos: 1 });
      assert.deepEqual(await gather(late, 'plat/q/#', 300), [], 'nothing was retained north');
    } finally {
      route = testRoute();
    }
  });

  it('sessions register and unregister themselves', async () => {
    const before = ctx.sessions.size;
    const c = await online(inMemory({ clientId: 'mem-6' }));
    assert.equal(ctx.sessions.size, before + 1);
    await closeAll([c]);
    await waitFor(() => ctx.sessions.size === before, 5000, 'session removed');
  });
});
