/**
 * Opens a byte stream to a north broker URL: mqtt:// (TCP), mqtts:// (TLS), ws:// and wss://
 * (WebSocket, subprotocol "mqtt"). The rest of the proxy only ever sees a Duplex.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createWebSocketStream, WebSocket } from 'ws';
import { checkCa, checkCertificateKey, readPem } from '../config/start-error.js';

export interface NorthTls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
}

/** NorthTls with the PEM files read. */
export interface NorthTlsOptions {
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
  servername: string | undefined;
  rejectUnauthorized: boolean;
}

export interface ParsedNorthUrl {
  protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss';
  host: string;
  port: number;
  href: string;
}

const DEFAULT_PORTS = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 } as const;

export function parseNorthUrl(url: string): ParsedNorthUrl {
  const u = new URL(url);
  const raw = u.protocol.replace(/:$/, '');
  const protocol = raw === 'tcp' ? 'mqtt' : raw === 'ssl' || raw === 'tls' ? 'mqtts' : raw;
  if (protocol !== 'mqtt' && protocol !== 'mqtts' && protocol !== 'ws' && protocol !== 'wss') {
    throw new Error(`MDP_ERR_NORTH_URL: unsupported north URL scheme "${raw}"`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[protocol];
  return { protocol, host, port, href: url };
}

export interface CompiledTransport {
  open(timeoutMs: number): Promise<Duplex>;
  /**
   * mqtt:// only: the socket right away, still connecting (writes are buffered until it
   * connects). The caller's own deadline covers the connect; a failure to connect comes as
   * the socket's 'error' (see `connectFailed`). No promise, timer or closures per connect.
   */
  dial?(): Duplex;
  readonly url: ParsedNorthUrl;
}

/** True for an error of a socket that never connected (refused, unreachable, name lookup). */
export function connectFailed(err: Error | undefined): boolean {
  const syscall = (err as NodeJS.ErrnoException | undefined)?.syscall;
  return syscall === 'connect' || syscall === 'getaddrinfo';
}

/**
 * The TLS options of a connection to the north URL (certificates read and checked here):
 * the proxy's north connections and anything else it opens to the platform use the same.
 */
export function northTlsOptions(parsed: ParsedNorthUrl, t: NorthTls = {}): NorthTlsOptions {
  const cert = readPem('north.cert', t.cert);
  const key = readPem('north.key', t.key);
  // Checked at start, so that an error names the option (not at each north connection).
  if (cert && key) {
    checkCertificateKey(
      { option: 'north.cert', value: t.cert as string, pem: cert },
      { option: 'north.key', value: t.key as string, pem: key },
    );
  }
  const ca = readPem('north.ca', t.ca);
  if (ca) checkCa('north.ca', t.ca as string, ca);
  return {
    ca,
    cert,
    key,
    servername: t.servername || (net.isIP(parsed.host) ? undefined : parsed.host),
    rejectUnauthorized: t.rejectUnauthorized ?? true,
  };
}

/** Built once from configuration: certificates are read at load, not per connection. */
export function compileTransport(url: string, t: NorthTls = {}): CompiledTransport {
  const parsed = parseNorthUrl(url);
  const tlsOpts = northTlsOptions(parsed, t);
  const dialOpts: net.NetConnectOpts = { host: parsed.host, port: parsed.port, noDelay: true };
  return {
    url: parsed,
    dial: parsed.protocol === 'mqtt' ? () => net.connect(dialOpts) : undefined,
    open(timeoutMs) {
      return new Promise<Duplex>((resolve, reject) => {
        let done = false;
        const finish = (err: Error | null, stream?: Duplex) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(stream!);
        };
        const timer = setTimeout(() => {
          finish(new Error('north connection timed out'));
          cleanup();
        }, timeoutMs);
        let cleanup = () => {};
        if (parsed.protocol === 'mqtt' || parsed.protocol === 'mqtts') {
          const sock =
            parsed.protocol === 'mqtt'
              ? net.connect(dialOpts)
              : tls.connect({ host: parsed.host, port: parsed.port, ...tlsOpts });
          cleanup = () => sock.destroy();
          if (parsed.protocol === 'mqtts') sock.setNoDelay(true);
          const onError = (err: Error) => finish(err);
          sock.once(parsed.protocol === 'mqtt' ? 'connect' : 'secureConnect', () => {
            sock.off('error', onError);
            finish(null, sock);
          });
          sock.once('error', onError);
        } else {
          const ws = new WebSocket(parsed.href, ['mqtt'], parsed.protocol === 'wss' ? tlsOpts : {});
          cleanup = () => ws.terminate();
          ws.once('open', () => {
            ws.removeAllListeners('error');
            finish(null, createWebSocketStream(ws));
          });
          ws.once('error', (err) => finish(err));
        }
      });
    },
  };
}
