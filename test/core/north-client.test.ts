/**
 * NorthClient, the proxy's own north MQTT client, against a real mosquitto: the CONNECT
 * handshake and its failures (refused, no CONNACK in time, closed), packets held until the
 * owner starts it, SUBSCRIBE answered through its waiters, and the state made only on use
 * (packet ids) still working when first needed.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import {
  FILTERS_PER_PACKET,
  NorthClient,
  NorthConnectError,
  type NorthHandlers,
} from '../../src/upstream/north.js';
import { compileTransport } from '../../src/upstream/transport.js';
import { connectClient, publish } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';

interface Recorder extends NorthHandlers {
  publishes: IPublishPacket[];
  closes: string[];
}

function recorder(): Recorder {
  const r: Recorder = {
    publishes: [],
    closes: [],
    onPublish: (p) => r.publishes.push(p),
    onAck: () => {},
    onPubrel: () => {},
    onDisconnect: () => {},
    onClose: (reason) => r.closes.push(reason),
    onDrain: () => {},
  };
  return r;
}

const OPTS = { timeoutMs: 3000, maxPacketBytes: 1 << 20 };

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('core: NorthClient against mosquitto', () => {
  let broker: MosquittoBroker;
  let secured: MosquittoBroker;
  before(async () => {
    broker = await startMosquitto();
    secured = await startMosquitto({ passwords: { alice: 'right' } });
  });
  after(async () => {
    await broker.stop();
    await secured.stop();
  });

  it('connects, subscribes through its ids and waiters, holds packets until start(), and ends', async () => {
    const connect = {
      cmd: 'connect' as const,
      clientId: 'nc-held',
      protocolVersion: 4 as const,
      keepalive: 30,
      clean: false,
    };
    const h1 = recorder();
    const metered: string[] = [];
    const first = await NorthClient.connect(
      compileTransport(broker.url),
      connect,
      { ...OPTS, meter: (dir, cmd) => metered.push(`${dir}:${cmd}`) },
      h1,
    );
    assert.equal(first.connack.returnCode, 0);
    assert.deepEqual(metered, ['north_out:connect', 'north_in:connack']);
    first.client.start();
    assert.deepEqual(await first.client.subscribe([{ topic: 'nc/held/#', qos: 1 }]), [1]);
    assert.equal(first.client.ids.inUse, 0, 'the SUBSCRIBE id is freed by its SUBACK');
    first.client.end({ cmd: 'disconnect' });
    await assert.rejects(first.client.subscribe([{ topic: 'x', qos: 0 }]), /closed/);
    assert.deepEqual(h1.closes, [], 'a graceful end is not reported as a close');

    // Queued while the persistent session is offline: sent right after the next CONNACK.
    const other = await connectClient(broker.url);
    try {
      await publish(other, 'nc/held/a', 'one', { qos: 1 });
    } finally {
      other.end(true);
    }
    const h2 = recorder();
    const inbound: string[] = [];
    const second = await NorthClient.connect(
      compileTransport(broker.url),
      connect,
      { ...OPTS, meter: (dir, cmd) => dir === 'north_in' && inbound.push(cmd) },
      h2,
    );
    assert.equal(second.connack.sessionPresent, true);
    await until(() => inbound.includes('publish'), 'the queued PUBLISH to arrive');
    assert.equal(h2.publishes.length, 0, 'not started: the PUBLISH waits inside the client');
    second.client.start();
    assert.deepEqual(
      h2.publishes.map((p) => [p.topic, p.payload.toString(), p.qos]),
      [['nc/held/a', 'one', 1]],
    );
    second.client.send({ cmd: 'puback', messageId: h2.publishes[0]?.messageId ?? 0 });
    second.client.destroy();
  });

  it('subscriptions sent with the CONNECT: one write, the SUBACK to onAutoSubscribed, messages flow', async () => {
    const h: Recorder & { subacks?: number[][] } = recorder();
    const subacks: number[][] = [];
    h.onAutoSubscribed = (granted) => subacks.push(granted);
    const metered: string[] = [];
    const res = await NorthClient.connect(
      compileTransport(broker.url),
      { cmd: 'connect', clientId: 'nc-pipelined', protocolVersion: 4, keepalive: 30, clean: true },
      {
        ...OPTS,
        meter: (dir, cmd) => metered.push(`${dir}:${cmd}`),
        subscribe: [{ topic: 'nc/pipe/#', qos: 1 }],
      },
      h,
    );
    assert.deepEqual(metered.slice(0, 3), ['north_out:connect', 'north_out:subscribe', 'north_in:connack']);
    await until(() => subacks.length === 1, 'the SUBACK');
    assert.deepEqual(subacks, [[1]], 'granted QoS 1, reported once');
    assert.equal(res.client.ids.inUse, 0, 'its packet id is freed');
    res.client.start();
    const other = await connectClient(broker.url);
    try {
      await publish(other, 'nc/pipe/x', 'piped', { qos: 0 });
      await until(() => h.publishes.length === 1, 'the PUBLISH on the pipelined subscription');
      assert.equal(h.publishes[0]?.payload.toString(), 'piped');
    } finally {
      other.end(true);
    }
    res.client.destroy();
  });

  it(`more than ${FILTERS_PER_PACKET} filters go as several SUBSCRIBE / UNSUBSCRIBE packets, answered in order`, async () => {
    const h = recorder();
    const metered: string[] = [];
    const res = await NorthClient.connect(
      compileTransport(broker.url),
      { cmd: 'connect', clientId: 'nc-parts', protocolVersion: 4, keepalive: 30, clean: true },
      { ...OPTS, meter: (dir, cmd) => metered.push(`${dir}:${cmd}`) },
      h,
    );
    res.client.start();
    const n = FILTERS_PER_PACKET * 2 + 50;
    // QoS 0 and 1 alternating: the answers must come back in the filters' order.
    const subs = Array.from({ length: n }, (_, i) => ({ topic: `nc/parts/${i}`, qos: (i % 2) as 0 | 1 }));
    const granted = await res.client.subscribe(subs);
    assert.deepEqual(
      granted,
      subs.map((s) => s.qos),
    );
    assert.equal(metered.filter((m) => m === 'north_out:subscribe').length, 3);
    assert.equal(res.client.ids.inUse, 0, 'the packet id of every part is freed');
    const other = await connectClient(broker.url);
    try {
      await publish(other, `nc/parts/${n - 1}`, 'last part', { qos: 0 });
      await until(() => h.publishes.length === 1, 'a PUBLISH on a filter of the last part');
      assert.equal(h.publishes[0]?.payload.toString(), 'last part');
      const gone = await res.client.unsubscribe(subs.map((s) => s.topic));
      assert.equal(gone.length, n);
      assert.equal(metered.filter((m) => m === 'north_out:unsubscribe').length, 3);
      await publish(other, `nc/parts/${n - 1}`, 'after', { qos: 0 });
      await publish(other, 'nc/parts/0', 'after', { qos: 0 });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(h.publishes.length, 1, 'unsubscribed from every part');
    } finally {
      other.end(true);
    }
    res.client.destroy();
  });

  it('subscriptions sent with a refused CONNECT: the refusal is the only outcome, nothing leaks', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const err = await NorthClient.connect(
        compileTransport(secured.url),
        { cmd: 'connect', clientId: 'nc-pipe-refused', protocolVersion: 4, keepalive: 30, clean: true },
        { ...OPTS, subscribe: [{ topic: 'nc/pipe/#', qos: 1 }] },
        recorder(),
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof NorthConnectError);
      assert.equal(err.reason, 'refused');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a refused CONNECT rejects with the CONNACK and closes the socket', async () => {
    const err = await NorthClient.connect(
      compileTransport(secured.url),
      {
        cmd: 'connect',
        clientId: 'nc-refused',
        protocolVersion: 4,
        keepalive: 30,
        clean: true,
        username: 'alice',
        password: Buffer.from('wrong'),
      },
      OPTS,
      recorder(),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NorthConnectError);
    assert.equal(err.reason, 'refused');
    assert.equal(err.connack?.returnCode, 5);
    assert.ok(!err.message.includes('wrong'), 'the password is not in the error');
  });

  it('the broker closing the connection after its CONNACK is reported once as a close', async () => {
    const h = recorder();
    const first = await NorthClient.connect(
      compileTransport(broker.url),
      { cmd: 'connect', clientId: 'nc-taken', protocolVersion: 4, keepalive: 30, clean: true },
      OPTS,
      h,
    );
    first.client.start();
    // A second connection with the same client id: mosquitto closes the first.
    const second = await connectClient(broker.url, { clientId: 'nc-taken' });
    try {
      await until(() => h.closes.length > 0, 'the first connection to close');
      assert.equal(h.closes.length, 1);
    } finally {
      second.end(true);
    }
  });
});

describe('core: NorthClient against a server that never answers', () => {
  let server: net.Server;
  let port = 0;
  const sockets = new Set<net.Socket>();
  before(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.resume(); // read (and drop) the CONNECT, so the peer's close is seen
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('no CONNACK within the timeout: rejects with "timeout" and closes its socket', async () => {
    const h = recorder();
    const err = await NorthClient.connect(
      compileTransport(`mqtt://127.0.0.1:${port}`),
      { cmd: 'connect', clientId: 'nc-silent', protocolVersion: 4, keepalive: 30, clean: true },
      { timeoutMs: 300, maxPacketBytes: 1 << 20 },
      h,
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NorthConnectError);
    assert.equal(err.reason, 'timeout');
    await until(() => sockets.size === 0, 'the server side of the socket to close');
    assert.deepEqual(h.closes, [], 'a failed CONNECT is reported by the rejection only');
  });

  it('the server closing before any CONNACK: rejects with "closed"', async () => {
    const closer = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    try {
      const p = (closer.address() as net.AddressInfo).port;
      const err = await NorthClient.connect(
        compileTransport(`mqtt://127.0.0.1:${p}`),
        { cmd: 'connect', clientId: 'nc-closed', protocolVersion: 4, keepalive: 30, clean: true },
        OPTS,
        recorder(),
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof NorthConnectError);
      assert.equal(err.reason, 'closed');
    } finally {
      await new Promise((r) => closer.close(r));
    }
  });

  it('nothing listening (the socket is written to while it connects): rejects with "unreachable"', async () => {
    // A port that was free a moment ago: the connect is refused, not answered and closed.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const p = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const h = recorder();
    const err = await NorthClient.connect(
      compileTransport(`mqtt://127.0.0.1:${p}`),
      { cmd: 'connect', clientId: 'nc-unreachable', protocolVersion: 4, keepalive: 30, clean: true },
      OPTS,
      h,
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof NorthConnectError);
    assert.equal(err.reason, 'unreachable');
    assert.match(err.message, /ECONNREFUSED/);
    assert.deepEqual(h.closes, [], 'a failed CONNECT is reported by the rejection only');
  });
});
