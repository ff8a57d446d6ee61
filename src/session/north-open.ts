/**
 * Opening a session's north side from the route's plan: its own connection (direct), a
 * device slot on a shared gateway connection (gateway), or nothing (local). Failures come
 * back as a NorthRefusal carrying the CONNACK code the client should get.
 */
import type {
  IConnackPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscription,
  Packet,
  QoS,
} from 'mqtt-packet';
import type { RawPublishHandler } from '../codec/channel.js';
import type { NorthPlan, Quirks } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { NorthClient, type NorthConnectError, type NorthMeter } from '../upstream/north.js';
import type { NorthPort } from '../upstream/port.js';
import { northRefusalCode, REFUSED_SERVER_UNAVAILABLE, type ReasonPair } from './codes.js';
import type { SessionContext } from './context.js';
import type { PacketMeter } from './meter.js';
import { northConnectSeconds } from './session-metrics.js';

const meters = new WeakMap<PacketMeter, NorthMeter>();

/** The north packet counter of a meter, made once per meter (not per connection). */
function northMeter(meter: PacketMeter): NorthMeter {
  let f = meters.get(meter);
  if (!f) {
    f = (dir, cmd, bytes) => meter.count(dir, cmd, bytes);
    meters.set(meter, f);
  }
  return f;
}

export interface NorthEvents {
  onPublish(packet: IPublishPacket): void;
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void;
  onPubrel(messageId: number): void;
  onDisconnect(packet: IDisconnectPacket): void;
  onClose(reason: string): void;
  onDrain(): void;
  onGatewayError(error: { type: string; description?: string }): void;
  /** A north PUBLISH frame before parsing (direct connections, MQTT 3.1.1): true when taken. */
  onRawPublish?: RawPublishHandler;
  /** The SUBACK of the automatic subscriptions sent with the CONNECT, or with a gateway's attach. */
  onAutoSubscribed?(granted: number[]): void;
  /** A gateway device whose place on the link a newer session of the same device took. */
  onEvicted?(): void;
}

export interface NorthOpened {
  port: NorthPort;
  connack?: IConnackPacket;
  /** Highest QoS to send north (a gateway platform refuses QoS 2). */
  maxQos: QoS;
  /** The automatic subscriptions went out with the CONNECT or the attach (their SUBACK: `onAutoSubscribed`). */
  autoSent: boolean;
}

export class NorthRefusal extends Error {
  constructor(
    readonly code: ReasonPair,
    readonly reason: string,
    readonly connack?: IConnackPacket,
  ) {
    super(reason);
  }
}

/** Opens the north side; undefined for a local session (no north at all). */
export async function openNorth(
  plan: NorthPlan,
  quirks: Quirks,
  ctx: SessionContext,
  routeName: string,
  /** The session's logger, made only when something is logged. */
  log: () => Logger,
  events: NorthEvents,
  /** The session's automatic north subscriptions: sent with the CONNECT on its own connection. */
  autoSubscribe: ISubscription[] = [],
): Promise<NorthOpened | undefined> {
  const metrics = ctx.metrics;
  if (plan.mode === 'local') return undefined;
  if (plan.mode === 'gateway') {
    if (!ctx.gateways) throw new NorthRefusal(REFUSED_SERVER_UNAVAILABLE, 'gateway_unavailable');
    try {
      const port = await ctx.gateways.attach(plan, events);
      // The attach made the automatic subscriptions (they are the plan's `subscriptions`).
      return { port, maxQos: 1, autoSent: true };
    } catch (err) {
      metrics.northConnectFailuresTotal.labels(routeName, 'attach_failed').inc();
      // Once per refused device, as `north connection failed`: within the log budget.
      if (ctx.repeats?.allow('warn', 'gateway attach failed', 'attach_failed') ?? true)
        log().warn({ err: (err as Error).message }, 'gateway attach failed');
      throw new NorthRefusal(REFUSED_SERVER_UNAVAILABLE, 'gateway_attach_failed');
    }
  }
  const t0 = performance.now();
  try {
    const res = await NorthClient.connect(
      ctx.transport(plan.url),
      applyConnectQuirks(plan.connect, quirks),
      {
        timeoutMs: ctx.limits.northConnectTimeoutMs,
        maxPacketBytes: ctx.limits.maxPacketBytes,
        meter: northMeter(ctx.meter),
        subscribe: autoSubscribe,
      },
      events,
    );
    northConnectSeconds(metrics, routeName).observe((performance.now() - t0) / 1000);
    return { port: res.client, connack: res.connack, maxQos: 2, autoSent: autoSubscribe.length > 0 };
  } catch (err) {
    const e = err as NorthConnectError;
    metrics.northConnectFailuresTotal.labels(routeName, e.reason ?? 'error').inc();
    if (ctx.repeats?.allow('warn', 'north connection failed', e.reason ?? 'error') ?? true)
      log().warn({ reason: e.reason, err: e.message }, 'north connection failed');
    throw new NorthRefusal(northRefusalCode(e.connack), `north_${e.reason ?? 'error'}`, e.connack);
  }
}

/** The CONNECT sent north, with the south dialect's quirks applied. */
export function applyConnectQuirks(c: IConnectPacket, q: Quirks): IConnectPacket {
  if (q.cleanSession === 'pass' && q.will === 'pass' && q.northKeepaliveMax === 0) return c;
  const out: IConnectPacket = { ...c };
  if (q.cleanSession === 'force_false') out.clean = false;
  if (q.will === 'ignore') delete out.will;
  if (q.northKeepaliveMax > 0 && (!out.keepalive || out.keepalive > q.northKeepaliveMax)) {
    out.keepalive = q.northKeepaliveMax;
  }
  return out;
}
