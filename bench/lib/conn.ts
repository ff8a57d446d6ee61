/**
 * One load generator connection: a raw socket that has sent CONNECT and got CONNACK 0,
 * with a frame scanner feeding `onFrame` and `afterChunk` hooks.
 */
import net from 'node:net';
import { connectPacket, DISCONNECT, FrameScanner, type Identity } from './mqtt-raw.js';

const CONNECT_TIMEOUT_MS = 20_000;

/** Replaces `{i}` in every field of the template with the device number. */
export function identityAt(t: Identity, i: number): Identity {
  const sub = (s: string | undefined): string | undefined => s?.replaceAll('{i}', String(i));
  const out: Identity = { clientId: sub(t.clientId) ?? '' };
  const username = sub(t.username);
  const password = sub(t.password);
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  return out;
}

export interface Conn {
  sock: net.Socket;
  scanner: FrameScanner;
  onFrame: (type: number, flags: number, buf: Buffer, start: number, end: number) => void;
  /** Called after each received chunk has been scanned (batches acks and refills). */
  afterChunk: () => void;
}

/** Opens a socket, sends CONNECT and resolves on CONNACK 0 (rejects on refusal or timeout). */
export function openConn(port: number, id: Identity): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let settled = false;
    const conn: Conn = {
      sock,
      scanner: new FrameScanner((type, flags, buf, start, end) => conn.onFrame(type, flags, buf, start, end)),
      afterChunk: () => {},
      onFrame: (type, _flags, buf, start) => {
        if (settled || type !== 2) return;
        settled = true;
        clearTimeout(timer);
        const code = buf[start + 1];
        conn.onFrame = () => {};
        if (code === 0) resolve(conn);
        else {
          sock.destroy();
          reject(new Error(`CONNACK return code ${code}`));
        }
      },
    };
    const timer = setTimeout(
      () => fail(new Error(`no CONNACK within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.on('data', (d: Buffer) => {
      conn.scanner.push(d);
      conn.afterChunk();
    });
    sock.on('error', (e) => fail(e));
    sock.on('close', () => fail(new Error('closed before CONNACK')));
    sock.write(connectPacket(id));
  });
}

export function closeAll(conns: Conn[]): void {
  for (const c of conns) {
    if (!c.sock.destroyed) c.sock.end(DISCONNECT);
    setTimeout(() => c.sock.destroy(), 500).unref();
  }
}
