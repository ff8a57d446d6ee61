/**
 * South listeners: TCP, TLS, WebSocket and secure WebSocket. Each one turns a connection into
 * one byte stream and hands it to the same `onStream`; nothing here knows MQTT.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { ProxyConfig } from '../config/schema.js';
import { checkCa, checkCertificateKey, readPem, startError } from '../config/start-error.js';

export interface StreamInfo {
  listener: 'tcp' | 'tls' | 'ws' | 'wss' | 'native-ws' | 'native-wss';
  remoteAddress?: string;
  /** The peer's port: with the address it tells apart devices behind one NAT. */
  remotePort?: number;
  peerCommonName?: string;
}

export type OnStream = (stream: Duplex, info: StreamInfo) => void;

/**
 * A plain TCP connection's info. The peer address costs a getpeername system call, so it is
 * read when first asked for and kept; whoever needs it after the socket may have closed (the
 * session's log lines at info and below) asks at once.
 */
class TcpInfo implements StreamInfo {
  readonly listener = 'tcp' as const;
  private peer: string | undefined;
  private port: number | undefined;
  private read = false;

  constructor(private readonly socket: net.Socket) {}

  private readPeer(): void {
    if (!this.read) {
      this.read = true;
      this.peer = this.socket.remoteAddress;
      this.port = this.socket.remotePort;
    }
  }

  get remoteAddress(): string | undefined {
    this.readPeer();
    return this.peer;
  }

  get remotePort(): number | undefined {
    this.readPeer();
    return this.port;
  }
}

/** Extra HTTP upgrade handlers (e.g. a native WebSocket face) tried before MQTT over WebSocket. */
export type UpgradeHook = (req: IncomingMessage, socket: Duplex, head: Buffer, secure: boolean) => boolean;

export interface Listeners {
  ports: { tcp?: number; ws?: number; tls?: number; wss?: number };
  /**
   * Stop accepting new connections (open ones are left to their sessions); resolves when every
   * connection a listener accepted has closed, so call `terminate()` once the sessions drained.
   */
  close(): Promise<void>;
  /**
   * Destroy every connection the listeners still hold: a WebSocket or TLS connection that never
   * finished its HTTP upgrade or handshake (no session owns it), or one a session left open.
   */
  terminate(): void;
}

const SUBPROTOCOLS = new Set(['mqtt', 'mqttv3.1']);

export async function startListeners(
  cfg: ProxyConfig['listen'],
  onStream: OnStream,
  upgradeHook: UpgradeHook | undefined,
  /** limits.maxPacketBytes: a WebSocket message may hold one packet of it, no more. */
  maxPacketBytes: number,
): Promise<Listeners> {
  const servers: Array<net.Server | http.Server> = [];
  const ports: Listeners['ports'] = {};
  // Every raw connection accepted, until it closes: server.close() waits for each of them, and
  // one that sends nothing (no HTTP request, no TLS ClientHello) would otherwise hold it forever.
  const sockets = new Set<net.Socket>();
  const track = (server: net.Server): void => {
    server.on('connection', (s: net.Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
  };
  const terminate = (): void => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  const tlsOpts = cfg.tlsCert && cfg.tlsKey ? serverTls(cfg) : undefined;
  try {
    if (cfg.tcpPort >= 0) {
      // noDelay as a server option: set on the accepted handle, no JS call per connection.
      const server = net.createServer({ noDelay: true }, (s) => {
        onStream(s, new TcpInfo(s));
      });
      track(server);
      ports.tcp = await listen(server, cfg.host, cfg.tcpPort, 'listen.tcpPort');
      servers.push(server);
    }
    if (tlsOpts && cfg.tlsPort >= 0) {
      const server = tls.createServer(tlsOpts, (s) => {
        s.setNoDelay(true);
        onStream(s, {
          listener: 'tls',
          remoteAddress: s.remoteAddress,
          remotePort: s.remotePort,
          peerCommonName: peerCn(s),
        });
      });
      server.on('tlsClientError', () => {
        /* handshake failures only affect that connection */
      });
      track(server);
      ports.tls = await listen(server, cfg.host, cfg.tlsPort, 'listen.tlsPort');
      servers.push(server);
    }
    if (cfg.wsPort >= 0) {
      const server = http.createServer(notFound);
      attachWs(server, cfg.wsPath, 'ws', onStream, maxPacketBytes, upgradeHook);
      track(server);
      ports.ws = await listen(server, cfg.host, cfg.wsPort, 'listen.wsPort');
      servers.push(server);
    }
    if (tlsOpts && cfg.wssPort >= 0) {
      const server = https.createServer(tlsOpts, notFound);
      attachWs(server, cfg.wsPath, 'wss', onStream, maxPacketBytes, upgradeHook);
      track(server);
      ports.wss = await listen(server, cfg.host, cfg.wssPort, 'listen.wssPort');
      servers.push(server);
    }
  } catch (err) {
    const closing = Promise.all(servers.map((s) => closeServer(s)));
    terminate();
    await closing;
    throw err;
  }
  return {
    ports,
    close: () => Promise.all(servers.map((s) => closeServer(s))).then(() => undefined),
    terminate,
  };
}

function serverTls(cfg: ProxyConfig['listen']): tls.TlsOptions {
  const ca = readPem('listen.tlsCa', cfg.tlsCa);
  const cert = readPem('listen.tlsCert', cfg.tlsCert) as string;
  const key = readPem('listen.tlsKey', cfg.tlsKey) as string;
  // Checked here, so that an error names the option rather than an OpenSSL routine.
  checkCertificateKey(
    { option: 'listen.tlsCert', value: cfg.tlsCert, pem: cert },
    { option: 'listen.tlsKey', value: cfg.tlsKey, pem: key },
  );
  if (ca) checkCa('listen.tlsCa', cfg.tlsCa, ca);
  return {
    cert,
    key,
    ca,
    // Certificates are optional: a client without one authenticates by other means.
    requestCert: Boolean(ca),
    rejectUnauthorized: false,
  };
}

function peerCn(s: tls.TLSSocket): string | undefined {
  if (!s.authorized) return undefined;
  const cn = s.getPeerCertificate()?.subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn || undefined;
}

function attachWs(
  server: http.Server,
  path: string,
  listener: 'ws' | 'wss',
  onStream: OnStream,
  maxPacketBytes: number,
  upgradeHook?: UpgradeHook,
): void {
  const wss = new WebSocketServer({
    noServer: true,
    // ws holds a whole message before the framer sees a byte of it: without this bound (ws's
    // default is 100 MiB) limits.maxPacketBytes would not apply before buffering. One packet
    // (its fixed header is at most 5 bytes) per message at most; a bigger one closes with 1009.
    maxPayload: maxPacketBytes + 5,
    handleProtocols: (protocols) => {
      for (const p of protocols) if (SUBPROTOCOLS.has(p)) return p;
      return false;
    },
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = req.url ?? '/';
    const pathname = url.split('?')[0];
    if (pathname === path) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        const stream = createWebSocketStream(ws);
        const tlsSock = req.socket as tls.TLSSocket;
        onStream(stream, {
          listener,
          remoteAddress: req.socket.remoteAddress,
          remotePort: req.socket.remotePort,
          peerCommonName: listener === 'wss' ? peerCn(tlsSock) : undefined,
        });
      });
      return;
    }
    if (upgradeHook?.(req, socket, head, listener === 'wss')) return;
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });
}

function notFound(_req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain' });
  res.end('MQTT over WebSocket: upgrade required\n');
}

function listen(server: net.Server, host: string, port: number, option: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const fail = (err: Error): void => reject(startError(option, `cannot listen on ${address}`, err));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
