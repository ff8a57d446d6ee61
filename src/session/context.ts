/**
 * What every session of one proxy shares: configuration, the current route (swapped on
 * reload), north transports, metrics and the logger. Built once by `startProxy`.
 */
import type { RouteHandler } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import type { RepeatBudget } from '../log/repeats.js';
import type { Metrics } from '../metrics/metrics.js';
import type { GatewayHub } from '../upstream/gateway.js';
import type { CompiledTransport } from '../upstream/transport.js';
import type { PacketMeter } from './meter.js';

export interface SessionContext {
  /** The route in force now: a reload swaps it for sessions opened afterwards. */
  route(): RouteHandler;
  /** North transport for a URL; the default (configured or embedded) when undefined. */
  transport(url?: string): CompiledTransport;
  readonly limits: {
    maxPacketBytes: number;
    connectTimeoutMs: number;
    northConnectTimeoutMs: number;
    /** QoS 1 downlinks a south gateway may leave unacknowledged (all its devices together). */
    gatewayInflight: number;
  };
  readonly metrics: Metrics;
  readonly meter: PacketMeter;
  readonly log: Logger;
  /** Lines repeated once per connection, within a budget (absent: every line is written). */
  readonly repeats?: RepeatBudget;
  /** Shared north connections of gateway routes. */
  readonly gateways?: GatewayHub;
  /** Open sessions, for the keepalive sweeper and shutdown. */
  readonly sessions: Set<SessionLike>;
}

export interface SessionLike {
  tick(now: number): void;
  /**
   * Stop reading, finish in-flight messages, tell the client, close. Resolves when closed.
   * When `cut` resolves first, the wait ends there as if the grace had expired.
   */
  drain(graceMs: number, cut?: Promise<void>): Promise<void>;
  close(reason: string): void;
}
