/**
 * The proxy as a library: listeners + sessions + north connections + metrics server.
 * `startProxy` is what the CLI, the tests and the benchmarks call.
 */
import type { RouteHandler } from './core/contract.js';
import type { ProxyConfig } from './config/schema.js';
import type { Logger } from './log/logger.js';
import type { Metrics } from './metrics/metrics.js';
import type { CredentialStore } from './store/types.js';

export interface ProxyOptions {
  logger?: Logger;
  /** Use this route instead of loading `config.mapping.route` from the mappings folder. */
  route?: RouteHandler;
  store?: CredentialStore;
}

export interface ProxyHandle {
  /** Bound ports (listeners configured with port 0 get a free one). */
  readonly ports: { tcp?: number; ws?: number; tls?: number; wss?: number; metrics?: number; embedded?: number };
  readonly metrics: Metrics;
  /** The north URL in use (the embedded broker's when none is configured). */
  readonly northUrl: string;
  /** Number of open south connections. */
  connectionCount(): number;
  /** Reload mappings and credentials; false (old version kept, errors logged) when invalid. */
  reload(): Promise<boolean>;
  /** Stop accepting, tell clients, wait up to graceMs for in-flight QoS 1/2, close everything. */
  close(graceMs?: number): Promise<void>;
}

export declare function startProxy(config: ProxyConfig, opts?: ProxyOptions): Promise<ProxyHandle>;
