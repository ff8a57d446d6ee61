/**
 * Process-level signals, on the real CLI as a child process:
 * SIGTERM stops accepting, lets in-flight QoS 1 finish, tells MQTT 5 clients (DISCONNECT
 * 0x8B, server shutting down) and exits 0; SIGHUP reloads mappings and counts it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { IDisconnectPacket, IPublishPacket } from 'mqtt-packet';
import { startAedes } from '../emulators/aedes-server.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  waitClosed,
  withTimeout,
} from '../helpers/clients.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { trackDir } from '../helpers/reaper.js';
import { type CliProxy, exitWithin, httpText, startCli } from './cli-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = trackDir(mkdtempSync(join(tmpdir(), 'mdp-signals-')));
after(() => rmSync(tmp, { recursive: true, force: true }));

function proxyArgs(northUrl: string, extra: Record<string, string> = {}): string[] {
  const flags: Record<string, string> = {
    host: '127.0.0.1',
    'tcp-port': '0',
    'ws-port': '-1',
    'tls-port': '-1',
    'wss-port': '-1',
    'metrics-host': '127.0.0.1',
    'metrics-port': '0',
    'north-url': northUrl,
    'log-format': 'json',
    'log-level': 'info',
    'store-file': join(tmp, 'store.json'),
    ...extra,
  };
  return Object.entries(flags).map(([k, v]) => `--${k}=${v}`);
}

/** Resolves once a TCP connect to the port is refused (the listener is closed); bounded. */
async function waitRefused(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    if (refused) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} still accepting after ${timeoutMs} ms`);
}

/**
 * A TCP relay in front of the north broker whose broker-to-proxy direction can be held:
 * acknowledgements from the broker wait in the relay until release().
 */
async function startHoldingRelay(targetPort: number) {
  const pairs = new Set<{ up: Socket; down: Socket }>();
  let holding = false;
  const server: Server = createServer((down) => {
    const up = netConnect(targetPort, '127.0.0.1');
    const pair = { up, down };
    pairs.add(pair);
    down.pipe(up);
    up.pipe(down);
    if (holding) up.pause();
    const end = (): void => {
      pairs.delete(pair);
      up.destroy();
      down.destroy();
    };
    up.on('error', end).on('close', end);
    down.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    hold(): void {
      holding = true;
      for (const p of pairs) p.up.pause();
    },
    release(): void {
      holding = false;
      for (const p of pairs) p.up.resume();
    },
    async close(): Promise<void> {
      for (const p of pairs) {
        p.up.destroy();
        p.down.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('SIGTERM: stop accepting, finish in-flight QoS 1, DISCONNECT 0x8B to MQTT 5 clients, exit 0', async () => {
  const broker = await startMosquitto();
  const relay = await startHoldingRelay(broker.port);
  let proxy: CliProxy | undefined;
  const clients: MqttClient[] = [];
  try {
    // A subscriber directly on the broker proves the message reached north.
    const watcher = await connectClient(broker.url, { clientId: 'sig-watcher' });
    clients.push(watcher);
    await subscribe(watcher, 'slow/#', { qos: 1 });
    proxy = await startCli({ cwd: root, args: proxyArgs(relay.url, { 'shutdown-grace-ms': '15000' }) });
    const url = `mqtt://127.0.0.1:${proxy.ports.tcp}`;
    const v5 = await connectClient(url, { protocolVersion: 5, clientId: 'sig-v5' });
    const v4 = await connectClient(url, { protocolVersion: 4, clientId: 'sig-v4' });
    clients.push(v5, v4);
    let disconnect: IDisconnectPacket | undefined;
    v5.on('disconnect', (p) => {
      disconnect = p;
    });
    const received: string[] = [];
    v5.on('packetreceive', (p) => received.push(p.cmd));
    const v5closed = waitClosed(v5, 30_000);
    const v4closed = waitClosed(v4, 30_000);

    // Hold the broker's PUBACK in the relay: the message is in flight in the proxy.
    relay.hold();
    const reachedNorth = nextMessage(watcher, 'slow/#', 10_000);
    const acked = publish(v5, 'slow/1', 'in-flight', { qos: 1 }, 30_000);
    const seen = await reachedNorth;
    assert.equal(seen.payload.toString(), 'in-flight');

    proxy.child.kill('SIGTERM');
    await waitRefused(proxy.ports.tcp as number, 10_000);
    assert.equal(disconnect, undefined, 'no DISCONNECT while a QoS 1 message is in flight');
    assert.equal(proxy.child.exitCode, null, 'the process waits for the in-flight message');

    relay.release();
    await acked; // MQTT.js completes a QoS 1 publish on its PUBACK
    assert.ok(received.includes('puback'), 'the in-flight QoS 1 message was acknowledged to the device');

    assert.equal(await exitWithin(proxy, 30_000), 0);
    await v5closed;
    await v4closed;
    assert.equal(
      (disconnect as IDisconnectPacket | undefined)?.reasonCode,
      0x8b,
      'MQTT 5 client told: server shutting down',
    );
    assert.match(proxy.stdout(), /"signal":"SIGTERM"/);
  } finally {
    relay.release();
    await closeAll(clients);
    await proxy?.kill();
    await relay.close();
    await broker.stop();
  }
});

test('SIGHUP reloads the configuration: mqtt_proxy_config_reloads_total increments, service continues', async () => {
  const north = await startAedes({});
  let proxy: CliProxy | undefined;
  const clients: MqttClient[] = [];
  try {
    proxy = await startCli({ cwd: root, args: proxyArgs(north.url) });
    const metricsUrl = `http://127.0.0.1:${proxy.ports.metrics}/metrics`;
    const reloads = async (): Promise<number> => {
      const m = (await httpText(metricsUrl)).body.match(
        /^mqtt_proxy_config_reloads_total\{kind="mapping",result="success"\} (\d+)$/m,
      );
      return m ? Number(m[1]) : 0;
    };
    assert.equal(await reloads(), 0);
    for (const expected of [1, 2]) {
      proxy.child.kill('SIGHUP');
      const deadline = Date.now() + 10_000;
      while ((await reloads()) < expected && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await reloads(), expected);
    }
    assert.equal(proxy.child.exitCode, null, 'SIGHUP does not stop the process');
    const c = await connectClient(`mqtt://127.0.0.1:${proxy.ports.tcp}`, { clientId: 'after-hup' });
    clients.push(c);
    const got = new Promise<IPublishPacket>((resolve) =>
      north.broker.once('publish', (p) => resolve(p as IPublishPacket)),
    );
    await publish(c, 'after/hup', 'x', { qos: 1 });
    assert.equal((await withTimeout(got, 5000, 'north publish')).topic, 'after/hup');
    await closeAll(clients);
    proxy.child.kill('SIGTERM');
    assert.equal(await exitWithin(proxy, 20_000), 0);
  } finally {
    await closeAll(clients);
    await proxy?.kill();
    await north.stop();
  }
});

test('a second SIGTERM during the drain closes at once: DISCONNECT 0x8B, a log line, exit 0', async () => {
  const broker = await startMosquitto();
  const relay = await startHoldingRelay(broker.port);
  let proxy: CliProxy | undefined;
  const clients: MqttClient[] = [];
  try {
    const watcher = await connectClient(broker.url, { clientId: 'sig2-watcher' });
    clients.push(watcher);
    await subscribe(watcher, 'slow/#', { qos: 1 });
    proxy = await startCli({ cwd: root, args: proxyArgs(relay.url, { 'shutdown-grace-ms': '60000' }) });
    const v5 = await connectClient(`mqtt://127.0.0.1:${proxy.ports.tcp}`, {
      protocolVersion: 5,
      clientId: 'sig2-v5',
    });
    clients.push(v5);
    let disconnect: IDisconnectPacket | undefined;
    v5.on('disconnect', (p) => {
      disconnect = p;
    });
    const v5closed = waitClosed(v5, 30_000);

    // A QoS 1 message held in flight: the drain would wait the whole minute for it.
    relay.hold();
    const reachedNorth = nextMessage(watcher, 'slow/#', 10_000);
    void publish(v5, 'slow/2', 'in-flight', { qos: 1 }, 60_000).catch(() => {});
    await reachedNorth;

    proxy.child.kill('SIGTERM');
    await waitRefused(proxy.ports.tcp as number, 10_000);
    assert.equal(proxy.child.exitCode, null, 'the first SIGTERM waits for the in-flight message');
    proxy.child.kill('SIGTERM');
    // Not killed by the signal's default action (exit 143, clients told nothing): closed now.
    assert.equal(await exitWithin(proxy, 10_000), 0);
    await v5closed;
    assert.equal(disconnect?.reasonCode, 0x8b, 'MQTT 5 client told: server shutting down');
    assert.ok(
      proxy.records.some((r) => /second signal: closing now/.test(String(r['msg'])) && r['level'] === 40),
      proxy.stdout(),
    );
  } finally {
    relay.release();
    await closeAll(clients);
    await proxy?.kill();
    await relay.close();
    await broker.stop();
  }
});
