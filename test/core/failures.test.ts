/**
 * Failures: a north broker that is down or dies, bad bytes and protocol violations from a
 * client, oversize packets, missing CONNECT, silent clients. Each affects only its own
 * connection: the proxy keeps serving the others and the process stays up.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, rawConnect } from '../helpers/raw.js';

const port = (url: string): number => Number(new URL(url).port);

/** A client on the proxy that must keep working while others misbehave. */
async function assertServes(proxy: TestProxy, bystander: MqttClient, tag: string): Promise<void> {
  assert.ok(bystander.connected, 'bystander still connected');
  await subscribe(bystander, `fail/bystander/${tag}`, { qos: 1 });
  const got = nextMessage(bystander, `fail/bystander/${tag}`);
  await publish(bystander, `fail/bystander/${tag}`, 'still here', { qos: 1 });
  assert.equal((await got).payload.toString(), 'still here');
  assert.ok(proxy.connectionCount() >= 1);
}

describe('core: north broker down or dying', () => {
  it('refuses CONNECT while north is down (3.1.1 code 3, v5 0x88), then serves once it is back', async () => {
    const broker = await startMosquitto();
    const proxy = await startTestProxy({ north: { url: broker.url } });
    try {
      broker.kill();
      const v4 = await tryConnect(proxy.url, { protocolVersion: 4 });
      assert.equal(v4.connack?.returnCode, 3);
      assert.equal(v4.closed, true);
      const v5 = await tryConnect(proxy.url, { protocolVersion: 5 });
      assert.equal(v5.connack?.reasonCode, 0x88);
      assert.equal(v5.closed, true);
      await broker.restart();
      const c = await connectClient(proxy.url);
      await assertServes(proxy, c, 'north-back');
      await closeAll([c]);
    } finally {
      await proxy.close(200);
      await broker.stop();
    }
  });

  it('closes the clients of a north broker that dies mid-session and keeps serving others', async () => {
    const doomed = await startMosquitto();
    const healthy = await startMosquitto();
    const proxyDoomed = await startTestProxy({ north: { url: doomed.url } });
    const proxyHealthy = await startTestProxy({ north: { url: healthy.url } });
    const clients: MqttClient[] = [];
    try {
      const a = await connectClient(proxyDoomed.url, { protocolVersion: 4 });
      const b = await connectClient(proxyDoomed.url, { protocolVersion: 5 });
      const other = await connectClient(proxyHealthy.url);
      clients.push(a, b, other);
      const closedA = waitClosed(a, 8000);
      const closedB = waitClosed(b, 8000);
      doomed.kill();
      await Promise.all([closedA, closedB]);
      assert.equal(proxyDoomed.connectionCount(), 0);
      await assertServes(proxyHealthy, other, 'north-died');
      // The proxy whose north died serves new clients once north is back.
      await doomed.restart();
      const again = await connectClient(proxyDoomed.url);
      clients.push(again);
      await assertServes(proxyDoomed, again, 'north-restarted');
    } finally {
      await closeAll(clients);
      await proxyDoomed.close(200);
      await proxyHealthy.close(200);
      await doomed.stop();
      await healthy.stop();
    }
  });
});

describe('core: misbehaving clients affect only their own connection', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let bystander: MqttClient;
  /** The proxy's log lines (JSON), for the close reasons and error codes it writes. */
  const logLines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    }),
  });

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy(
      {
        north: { url: broker.url },
        limits: { maxPacketBytes: 64 * 1024, connectTimeoutMs: 700 },
      },
      { logger },
    );
    bystander = await connectClient(proxy.url, { clientId: 'bystander', keepalive: 30 });
  });
  after(async () => {
    await closeAll([bystander]);
    await proxy?.close(200);
    await broker?.stop();
  });

  it('garbage bytes instead of CONNECT: connection closed', async () => {
    const raw = await rawConnect(port(proxy.url));
    raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x13, 0x37]));
    await raw.closed(5000);
    assert.equal(raw.packets.length, 0, 'no CONNACK for garbage');
    await assertServes(proxy, bystander, 'garbage');
  });

  it('garbage bytes after CONNECT: connection closed', async () => {
    const raw = await rawConnect(port(proxy.url));
    raw.send(connectPacket());
    assert.equal((await raw.nextPacket()).cmd, 'connack');
    // Packet type 0 is reserved: no parser may accept it.
    raw.write(Buffer.from([0x00, 0x02, 0xde, 0xad]));
    await raw.closed(5000);
    await assertServes(proxy, bystander, 'garbage-after-connect');
  });

  it('a packet over maxPacketBytes: connection closed, nothing reaches north', async () => {
    const watcher = await connectClient(broker.url);
    try {
      await subscribe(watcher, 'fail/big', { qos: 0 });
      const big = await connectClient(proxy.url, { protocolVersion: 5 });
      const closed = waitClosed(big, 8000);
      big.publish('fail/big', randomBytes(100 * 1024), { qos: 0 });
      await closed;
      assert.deepEqual(await gather(watcher, 'fail/big', 300), []);
      const closes = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        closes.some((l) => l.reason === 'packet_too_large' && l.code === 'MDP_ERR_PACKET_TOO_LARGE'),
        'the close is logged with its reason and error code',
      );
      // Just under the limit still passes.
      const ok = await connectClient(proxy.url);
      const got = nextMessage(watcher, 'fail/big');
      await publish(ok, 'fail/big', randomBytes(60 * 1024), { qos: 1 });
      assert.equal((await got).payload.length, 60 * 1024);
      await closeAll([ok]);
    } finally {
      await closeAll([watcher]);
    }
    await assertServes(proxy, bystander, 'oversize');
  });

  it('a second CONNECT: connection closed', async () => {
    const raw = await rawConnect(port(proxy.url));
    raw.send(connectPacket());
    assert.equal((await raw.nextPacket()).cmd, 'connack');
    raw.send(connectPacket());
    await raw.closed(5000);
    assert.equal(raw.packets.filter((p) => p.cmd === 'connack').length, 1);
    await assertServes(proxy, bystander, 'second-connect');
  });

  it('a packet before CONNECT: connection closed without CONNACK', async () => {
    const raw = await rawConnect(port(proxy.url));
    raw.send({
      cmd: 'publish',
      topic: 'fail/early',
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
    });
    await raw.closed(5000);
    assert.equal(raw.packets.length, 0);
    await assertServes(proxy, bystander, 'before-connect');
  });

  it('no CONNECT within limits.connectTimeoutMs: connection closed', async () => {
    const raw = await rawConnect(port(proxy.url));
    // connectTimeoutMs is 700 ms here; the bound below only keeps the test from hanging.
    await raw.closed(8000);
    assert.equal(raw.packets.length, 0);
    await assertServes(proxy, bystander, 'connect-timeout');
  });

  it('a client silent for 1.5 × its keepalive is dropped; one that pings stays', async () => {
    const silent = await rawConnect(port(proxy.url));
    silent.send(connectPacket({ keepalive: 1 }));
    assert.equal((await silent.nextPacket()).cmd, 'connack');
    // Same keepalive, but a PINGREQ every 300 ms until the silent one is gone (bounded: 30 pings).
    const pinging = await rawConnect(port(proxy.url));
    pinging.send(connectPacket({ keepalive: 1 }));
    assert.equal((await pinging.nextPacket()).cmd, 'connack');
    for (let i = 0; i < 30 && !silent.isClosed(); i++) {
      pinging.send({ cmd: 'pingreq' });
      await new Promise((r) => setTimeout(r, 300));
    }
    await silent.closed(2000);
    assert.equal(pinging.isClosed(), false, 'the client that pings is still connected');
    assert.ok(
      pinging.packets.some((p) => p.cmd === 'pingresp'),
      'PINGRESP relayed',
    );
    pinging.destroy();
    await assertServes(proxy, bystander, 'keepalive');
  });
});
