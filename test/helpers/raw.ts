/**
 * A raw MQTT connection for failure tests: send any bytes or packets (generated with
 * mqtt-packet), read back the packets the peer sends, and see when it closes.
 *
 *   const raw = await rawConnect(port);
 *   raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0 });
 *   const connack = await raw.nextPacket();
 *   raw.write(Buffer.from([0xff, 0xff]));   // garbage
 *   await raw.closed(5000);                  // rejects if still open after 5 s
 */
import { connect, type Socket } from 'node:net';
import mqtt, { type Packet } from 'mqtt-packet';

export interface RawClient {
  socket: Socket;
  /** Every packet received so far, in order. */
  packets: Packet[];
  /** Bytes received that the parser could not read (the peer sent something malformed). */
  parseErrors: Error[];
  send(packet: Packet | Record<string, unknown>, protocolVersion?: 3 | 4 | 5): void;
  write(bytes: Buffer): void;
  /** The next packet not yet returned by nextPacket (rejects on timeout or close). */
  nextPacket(timeoutMs?: number): Promise<Packet>;
  /** Resolves when the peer has closed the connection; rejects if still open after timeoutMs. */
  closed(timeoutMs?: number): Promise<void>;
  isClosed(): boolean;
  destroy(): void;
}

export function rawConnect(
  port: number,
  protocolVersion: 3 | 4 | 5 = 4,
  host = '127.0.0.1',
): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const parser = mqtt.parser({ protocolVersion });
    const packets: Packet[] = [];
    const parseErrors: Error[] = [];
    let read = 0;
    let isClosed = false;
    const waiters = new Set<() => void>();
    const wake = (): void => {
      for (const w of [...waiters]) w();
    };
    parser.on('packet', (p: Packet) => {
      packets.push(p);
      wake();
    });
    parser.on('error', (e: Error) => parseErrors.push(e));
    socket.on('data', (b: Buffer) => parser.parse(b));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      isClosed = true;
      wake();
    });
    const waitUntil = (ok: () => boolean, timeoutMs: number, what: string): Promise<void> =>
      new Promise((res, rej) => {
        const check = (): void => {
          if (ok()) {
            done();
            res();
          } else if (isClosed) {
            done();
            rej(new Error(`connection closed while waiting for ${what}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          rej(new Error(`${what} not seen within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    const client: RawClient = {
      socket,
      packets,
      parseErrors,
      send(packet, version = protocolVersion) {
        socket.write(mqtt.generate(packet as Packet, { protocolVersion: version }));
      },
      write(bytes) {
        socket.write(bytes);
      },
      async nextPacket(timeoutMs = 5000) {
        await waitUntil(() => packets.length > read, timeoutMs, 'a packet');
        return packets[read++]!;
      },
      closed(timeoutMs = 5000) {
        if (isClosed) return Promise.resolve();
        return new Promise((res, rej) => {
          const timer = setTimeout(() => {
            waiters.delete(check);
            rej(new Error(`connection still open after ${timeoutMs} ms`));
          }, timeoutMs);
          const check = (): void => {
            if (!isClosed) return;
            clearTimeout(timer);
            waiters.delete(check);
            res();
          };
          waiters.add(check);
        });
      },
      isClosed: () => isClosed,
      destroy: () => socket.destroy(),
    };
    socket.once('connect', () => resolve(client));
    socket.once('error', reject);
  });
}

/** A CONNECT packet with defaults (MQTT 3.1.1, clean session, no keepalive). */
export function connectPacket(over: Record<string, unknown> = {}): Record<string, unknown> {
  const v = (over.protocolVersion as number | undefined) ?? 4;
  return {
    cmd: 'connect',
    protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clientId: `raw-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    keepalive: 0,
    ...over,
  };
}
