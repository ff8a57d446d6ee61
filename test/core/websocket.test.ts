/**
 * The WebSocket listener's edges: wrong path, plain HTTP, garbage inside a WebSocket frame,
 * an unknown subprotocol, a message over the packet size limit; and the native WebSocket
 * face's malformed or aborted upgrades. Each affects only its own connection.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

/** Opens a WebSocket and reports how it ended: 'open' then 'close', or an 'error' first. */
function wsAttempt(
  url: string,
  protocols: string[],
  onOpen?: (ws: WebSocket) => void,
): Promise<{ opened: boolean; closed: boolean; error?: string; protocol?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    let opened = false;
    let protocol: string | undefined;
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ opened, closed: false, protocol });
    }, 5000);
    ws.on('open', () => {
      opened = true;
      protocol = ws.protocol;
      onOpen?.(ws);
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      resolve({ opened, closed: true, error: e.message, protocol });
    });
    ws.on('close', () => {
      clearTimeout(timer);
      resolve({ opened, closed: true, protocol });
    });
  });
}

describe('core: WebSocket listener edges', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let bystander: MqttClient;

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy({ north: { url: broker.url } });
    bystander = await connectClient(proxy.wsUrl, { clientId: 'ws-bystander' });
  });
  after(async () => {
    await closeAll([bystander]);
    await proxy?.close(200);
    await broker?.stop();
  });

  const stillServes = async (tag: string): Promise<void> => {
    await subscribe(bystander, `ws/${tag}`, { qos: 1 });
    const got = nextMessage(bystander, `ws/${tag}`);
    await publish(bystander, `ws/${tag}`, 'ok', { qos: 1 });
    assert.equal((await got).payload.toString(), 'ok');
  };

  it('an upgrade on another path is refused with 404', async () => {
    const wrong = proxy.wsUrl.replace(/\/mqtt$/, '/elsewhere');
    const r = await wsAttempt(wrong, ['mqtt']);
    assert.equal(r.opened, false);
    assert.match(r.error ?? '', /404/);
    await stillServes('path');
  });

  it('plain HTTP gets 426 Upgrade Required', async () => {
    const res = await fetch(proxy.wsUrl.replace(/^ws:/, 'http:'));
    assert.equal(res.status, 426);
    await res.text();
    await stillServes('http');
  });

  it('garbage inside a WebSocket frame closes that WebSocket', async () => {
    const r = await wsAttempt(proxy.wsUrl, ['mqtt'], (ws) => ws.send(Buffer.from([0x00, 0x02, 0xde, 0xad])));
    assert.equal(r.opened, true);
    assert.equal(r.closed, true);
    await stillServes('garbage');
  });

  it('the mqtt subprotocol is chosen; an unknown one alone is refused', async () => {
    const ok = await wsAttempt(proxy.wsUrl, ['foo', 'mqtt'], (ws) => ws.close());
    assert.equal(ok.protocol, 'mqtt');
    const bad = await wsAttempt(proxy.wsUrl, ['not-mqtt']);
    assert.equal(bad.opened, false);
    await stillServes('subprotocol');
  });

  it('a message over maxPacketBytes is refused by its header (close 1009), before it is buffered', async () => {
    const big = Buffer.alloc(proxy.config.limits.maxPacketBytes + 64);
    const code = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(proxy.wsUrl, ['mqtt']);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error('still open'));
      }, 5000);
      ws.on('open', () => ws.send(big));
      ws.on('error', () => {});
      ws.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 1009, 'closed by the WebSocket layer: message too big');
    await stillServes('oversize');
  });
});

/** Sends a raw HTTP request and returns what came back once the server closed (or `open: true`). */
function rawHttp(port: number, request: string, waitMs = 3000): Promise<{ open: boolean; text: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(request));
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ open: true, text });
    }, waitMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ open: false, text });
    });
  });
}

const upgrade = (path: string, key = 'dGhlIHNhbXBsZSBub25jZQ=='): string =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;

describe('core: native WebSocket upgrades that go wrong', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy({ north: { url: broker.url }, listen: { nativeWs: true } });
  });
  after(async () => {
    await proxy?.close(200);
    await broker?.stop();
  });

  it('a malformed percent-encoding in the path gets 400 and a closed socket', async () => {
    const r = await rawHttp(proxy.ports.ws!, upgrade('/a%E0%A4%A?access_token=k'));
    assert.equal(r.open, false, 'the socket was closed');
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.equal(proxy.connectionCount(), 0);
  });

  it('an upgrade the WebSocket layer refuses (bad key) ends the session it opened north', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await rawHttp(proxy.ports.ws!, upgrade(`/things/x${i}?access_token=k`, 'bad'));
      assert.equal(r.open, false);
      assert.match(r.text, /^HTTP\/1\.1 400 /);
    }
    // Well within the 10 s handshake timer: the refused socket's close ends each session.
    await waitFor(() => proxy.connectionCount() === 0, 3000, 'the three sessions to close');
  });
});
