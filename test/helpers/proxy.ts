/**
 * The proxy in-process for tests: every listener on a free 127.0.0.1 port (TLS/WSS only
 * when a certificate is given), metrics on a free port, silent logs unless
 * MQTT_PROXY_TEST_LOG is set (to a level: `MQTT_PROXY_TEST_LOG=debug`; any other value
 * means debug), written as JSON to stderr.
 *
 *   const proxy = await startTestProxy({ north: { url: broker.url } });
 *   const c = await connectClient(proxy.url);
 *   ...
 *   await proxy.close();
 */
import { configWith, type DeepPartial, type ProxyConfig } from '../../src/config/schema.js';
import { createLogger, type Logger, silentLogger } from '../../src/log/logger.js';
import type { ProxyHandle, ProxyOptions } from '../../src/proxy.js';

export interface TestProxy extends ProxyHandle {
  /** mqtt://127.0.0.1:TCP */
  url: string;
  /** ws://127.0.0.1:WS/mqtt (the configured wsPath) */
  wsUrl: string;
  /** mqtts://127.0.0.1:TLS when TLS is configured, else '' */
  tlsUrl: string;
  /** wss://127.0.0.1:WSS/mqtt when TLS is configured, else '' */
  wssUrl: string;
  /** http://127.0.0.1:METRICS when metrics are enabled, else '' */
  metricsUrl: string;
  /** The full configuration the proxy was started with. */
  config: ProxyConfig;
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace']);

export function testLogger(): Logger {
  const env = process.env.MQTT_PROXY_TEST_LOG;
  if (!env) return silentLogger;
  return createLogger({
    level: LEVELS.has(env) ? env : 'debug',
    format: 'json',
    destination: process.stderr,
  });
}

/** Test defaults under the caller's overrides (caller wins). */
export function testConfig(overrides: DeepPartial<ProxyConfig> = {}): ProxyConfig {
  const tls = Boolean(overrides.listen?.tlsCert && overrides.listen?.tlsKey);
  const base: DeepPartial<ProxyConfig> = {
    listen: { host: '127.0.0.1', tcpPort: 0, wsPort: 0, tlsPort: tls ? 0 : -1, wssPort: tls ? 0 : -1 },
    metrics: { host: '127.0.0.1', port: 0 },
    embedded: { port: 0 },
    log: { level: 'silent', format: 'json' },
  };
  return configWith(merge(base, overrides));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function merge<T>(a: T, b: T): T {
  if (!isPlainObject(a) || !isPlainObject(b)) return (b === undefined ? a : b) as T;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = k in out ? merge(out[k], v) : v;
  }
  return out as T;
}

export async function startTestProxy(
  overrides: DeepPartial<ProxyConfig> = {},
  opts: ProxyOptions = {},
): Promise<TestProxy> {
  const config = testConfig(overrides);
  // Imported lazily so that helpers which do not need the proxy load without it.
  const { startProxy } = await import('../../src/proxy.js');
  const handle = await startProxy(config, { logger: testLogger(), ...opts });
  const p = handle.ports;
  const path = config.listen.wsPath.startsWith('/') ? config.listen.wsPath : `/${config.listen.wsPath}`;
  const extra = {
    url: p.tcp !== undefined ? `mqtt://127.0.0.1:${p.tcp}` : '',
    wsUrl: p.ws !== undefined ? `ws://127.0.0.1:${p.ws}${path}` : '',
    tlsUrl: p.tls !== undefined ? `mqtts://127.0.0.1:${p.tls}` : '',
    wssUrl: p.wss !== undefined ? `wss://127.0.0.1:${p.wss}${path}` : '',
    metricsUrl: p.metrics !== undefined ? `http://127.0.0.1:${p.metrics}` : '',
    config,
  };
  // The handle may be a class instance: keep its methods bound to it.
  return new Proxy(handle, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in extra) return extra[prop as keyof typeof extra];
      const v = Reflect.get(target, prop);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as TestProxy;
}
