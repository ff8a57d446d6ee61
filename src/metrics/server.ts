/**
 * The operations HTTP server on the metrics port:
 *   GET /metrics  Prometheus text exposition of the registry
 *   GET /healthz  200 while the process is alive and its event loop answers
 *   GET /readyz   200 when every readiness check passes, 503 otherwise; body: the checks as JSON
 * Anything else is 404; methods other than GET and HEAD are 405. A failing collector
 * answers 500 with a generic message and never takes the process down.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  checks: Record<string, boolean>;
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Readiness;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    handle(opts, req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  // Scrapers and probes open short keep-alive connections; do not let them hold close() up.
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10000;
  server.requestTimeout = 15000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Errors after listening (a broken socket) concern one client only.
  server.on('clientError', (_err, socket) => socket.destroy());
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handle(opts: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  switch (path) {
    case '/metrics': {
      const body = await opts.registry.metrics();
      send(res, 200, opts.registry.contentType, body, req.method === 'HEAD');
      return;
    }
    case '/healthz':
      send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }), req.method === 'HEAD');
      return;
    case '/readyz': {
      let r: Readiness;
      try {
        r = opts.readiness();
      } catch {
        r = { ready: false, checks: { readiness: false } };
      }
      const body = JSON.stringify({ status: r.ready ? 'ready' : 'not ready', checks: r.checks });
      send(res, r.ready ? 200 : 503, 'application/json', body, req.method === 'HEAD');
      return;
    }
    default:
      send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, headOnly = false): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}
