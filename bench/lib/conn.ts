/**
 * One load generator connection: a raw socket that has sent CONNECT and got CONNACK 0,
 * with a frame scanner feeding `onFrame` and `afterChunk` hooks.
 */
import net from 'node:net';
import { connectPacket, DISCONNECT, FrameScanner, type Identity } from './mqtt-raw.js';

export const CONNECT_TIMEOUT_MS = 20_000;

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
  closeSockets(conns.map((c) => c.sock));
}

/**
 * An idle device for the connect test: a socket that sends a CONNECT made beforehand and
 * waits for CONNACK 0, nothing more (no frame scanner; bytes after the CONNACK are ignored).
 * The deadline is the caller's (one timer per lane, refreshed per connect): the generator's
 * own cost per connect stays small beside the hop's, on cores they share.
 */
export function openIdle(port: number, connect: Buffer, track: (s: net.Socket) => void): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', noDelay: true });
    track(sock);
    let head: Buffer | undefined;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(e);
    };
    sock.on('data', (d: Buffer) => {
      if (settled) return;
      head = head ? Buffer.concat([head, d]) : d;
      if (head.length < 4) return;
      settled = true;
      if (head[0] === 0x20 && head[3] === 0) resolve(sock);
      else {
        sock.destroy();
        reject(new Error(head[0] === 0x20 ? `CONNACK return code ${head[3]}` : 'not a CONNACK'));
      }
    });
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('closed before CONNACK')));
    sock.write(connect);
  });
}

export function closeSockets(socks: net.Socket[]): void {
  for (const s of socks) {
    if (!s.destroyed) s.end(DISCONNECT);
    setTimeout(() => s.destroy(), 500).unref();
  }
}
