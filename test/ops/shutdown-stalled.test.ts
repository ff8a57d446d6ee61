/**
 * Shutdown is bounded by its grace even when a peer holds a listener's connection open without
 * ever becoming a session: a raw TCP connection to the WebSocket port that sends nothing or
 * half an HTTP request, or one to the TLS port that never sends a ClientHello.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generateCerts, type TestPki } from '../helpers/certs.js';
import { startTestProxy } from '../helpers/proxy.js';

function rawConnect(port: number, send?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      if (send) s.write(send);
      resolve(s);
    });
    s.on('error', reject);
  });
}

async function closesWithin(close: Promise<void>, ms: number): Promise<number> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), ms);
  });
  const res = await Promise.race([close.then(() => 'closed' as const), timeout]);
  clearTimeout(timer);
  assert.equal(res, 'closed', `proxy.close() did not finish within ${ms} ms`);
  return Date.now() - t0;
}

describe('ops: shutdown with stalled listener connections', () => {
  let pki: TestPki;
  const sockets: net.Socket[] = [];
  before(() => {
    pki = generateCerts();
  });
  after(() => {
    for (const s of sockets) s.destroy();
    pki?.cleanup();
  });

  it('a silent and a half-HTTP connection on the ws port do not hold close(200)', async () => {
    const proxy = await startTestProxy({ listen: { tcpPort: -1 } });
    sockets.push(await rawConnect(proxy.ports.ws!));
    sockets.push(await rawConnect(proxy.ports.ws!, 'GET /mqtt HTTP/1.1\r\nHost: x\r\n'));
    await closesWithin(proxy.close(200), 2000);
  });

  it('a connection that never starts its TLS handshake does not hold close(200) (tls, wss)', async () => {
    const proxy = await startTestProxy({
      listen: { tcpPort: -1, wsPort: -1, tlsCert: pki.server.certPath, tlsKey: pki.server.keyPath },
    });
    sockets.push(await rawConnect(proxy.ports.tls!));
    sockets.push(await rawConnect(proxy.ports.wss!));
    await closesWithin(proxy.close(200), 2000);
  });
});
