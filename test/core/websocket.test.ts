/**
 * The WebSocket listener's edges: wrong path, plain HTTP, garbage inside a WebSocket frame,
 * an unknown subprotocol. Each affects only its own connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
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
});
