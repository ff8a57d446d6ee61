/**
 * An aedes broker (MQTT 3.1.1) on a free 127.0.0.1 port: the base of the platform emulators.
 * The emulators give it hooks (authenticate, authorizePublish, ...) that apply a platform's
 * rules, and read its state for the tests' assertions.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type AedesOptions, type AuthenticateError, type Client } from 'aedes';

export interface AedesServer {
  broker: Aedes;
  port: number;
  /** mqtt://127.0.0.1:PORT, or mqtts:// with TLS. */
  url: string;
  /** Close every connection and the broker. Idempotent. */
  stop(): Promise<void>;
}

/** PEM server certificate and key: the emulator then speaks MQTT over TLS (mqtts://). */
export interface EmulatorTls {
  cert: string;
  key: string;
  /** CA of client certificates; when given, clients may present one (see `peerCommonName`). */
  ca?: string;
}

export async function startAedes(opts: AedesOptions, tls?: EmulatorTls): Promise<AedesServer> {
  const broker = await Aedes.createBroker({ heartbeatInterval: 60_000, ...opts });
  const sockets = new Set<Socket>();
  const accept = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  };
  const server: Server = tls
    ? createTlsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ca: tls.ca,
          requestCert: tls.ca !== undefined,
          rejectUnauthorized: false,
        },
        accept,
      )
    : createServer(accept);
  // A client's bad packet is its own problem: aedes reports it here and closes that client.
  broker.on('clientError', () => undefined);
  broker.on('connectionError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('could not read the emulator port');
  let stopped = false;
  return {
    broker,
    port: addr.port,
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${addr.port}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

/** Common name of the verified TLS client certificate of a client, if any. */
export function peerCommonName(client: Client): string | undefined {
  const conn = client.conn as Partial<TLSSocket>;
  if (typeof conn.getPeerCertificate !== 'function' || !conn.authorized) return undefined;
  const cn = conn.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/** A CONNECT refusal with the given MQTT 3.1.1 return code (2 id rejected, 4 bad credentials, 5 not authorized). */
export function refuse(returnCode: 2 | 4 | 5, message: string): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  (err as { returnCode: number }).returnCode = returnCode;
  return err;
}

/** Publish QoS 0 straight to one client (no routing through topics: per-client isolation). */
export function sendTo(
  client: Client,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1 = 0,
): Promise<void> {
  return new Promise((resolve) => {
    client.publish(
      { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false },
      () => resolve(),
    );
  });
}

/** Waits until predicate() is true, polling every 10 ms; rejects after timeoutMs. */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    if (predicate()) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}
