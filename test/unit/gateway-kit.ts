/**
 * Shared pieces of the gateway link tests: an aedes broker on an in-memory stream pair whose
 * delivery can be held (the link's north connection), a GatewayHub on it, device plans, and
 * real Sessions attached through the hub (the test plays each device with mqtt-packet bytes).
 */
import { Duplex } from 'node:stream';
import { Aedes, type AedesOptions } from 'aedes';
import mqtt, { type Packet } from 'mqtt-packet';
import {
  type NorthPlan,
  PASS_QUIRKS,
  type RouteHandler,
  type SessionMapper,
} from '../../src/core/contract.js';
import { type Logger, silentLogger } from '../../src/log/logger.js';
import type { Metrics } from '../../src/metrics/metrics.js';
import type { Session } from '../../src/session/session.js';
import { type GatewayEnv, GatewayHub } from '../../src/upstream/gateway.js';
import type { GatewayMember, MemberEvents } from '../../src/upstream/gateway-member.js';
import { type CompiledTransport, parseNorthUrl } from '../../src/upstream/transport.js';
import { until } from './kit.js';
import { startSession, testMapper } from './session-kit.js';

export interface GatedPair {
  proxySide: Duplex;
  brokerSide: Duplex;
  /** Every packet the proxy wrote toward the broker, parsed, in order. */
  sent: Packet[];
  release(): void;
  hold(): void;
}

/**
 * Two connected streams; while `held`, what the proxy's side writes waits (its callbacks
 * too). `coalesceMs`: what the broker writes within that time reaches the proxy as one chunk,
 * as one TCP segment would (several packets handled in one read).
 */
export function gatedPair(coalesceMs = 0): GatedPair {
  let held = false;
  let waiting: Array<() => void> = [];
  let proxySide: Duplex;
  const sent: Packet[] = [];
  const tap = mqtt.parser({ protocolVersion: 4 });
  tap.on('packet', (p: Packet) => sent.push(p));
  tap.on('error', () => undefined);
  let batch: Buffer[] = [];
  const brokerSide = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (coalesceMs <= 0) proxySide.push(chunk);
      else {
        if (batch.length === 0)
          setTimeout(() => {
            const all = Buffer.concat(batch);
            batch = [];
            if (!proxySide.destroyed) proxySide.push(all);
          }, coalesceMs);
        batch.push(chunk);
      }
      cb();
    },
    final(cb) {
      proxySide.push(null);
      cb();
    },
    destroy(err, cb) {
      if (!proxySide.destroyed) proxySide.destroy();
      cb(err);
    },
  });
  proxySide = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      const deliver = () => {
        tap.parse(chunk);
        brokerSide.push(chunk);
        cb();
      };
      if (held) waiting.push(deliver);
      else deliver();
    },
    final(cb) {
      brokerSide.push(null);
      cb();
    },
    destroy(err, cb) {
      if (!brokerSide.destroyed) brokerSide.destroy();
      cb(err);
    },
  });
  return {
    proxySide,
    brokerSide,
    sent,
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      const w = waiting;
      waiting = [];
      for (const d of w) d();
    },
  };
}

export type GatewayPlan = Extract<NorthPlan, { mode: 'gateway' }>;

export function plan(
  deviceId: string,
  over: Partial<Pick<GatewayPlan, 'subscriptions' | 'gatewaySubscriptions'>> = {},
): GatewayPlan {
  const control = (op: string) => ({
    topic: `/devices/${deviceId}/${op}`,
    payload: Buffer.from('{}'),
    qos: 1 as const,
    retain: false,
  });
  return {
    mode: 'gateway',
    key: 'gw-1',
    connect: () => ({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'gw-1',
      clean: true,
      keepalive: 60,
    }),
    deviceId,
    attach: control('attach'),
    detach: control('detach'),
    subscriptions: [],
    gatewaySubscriptions: [],
    ...over,
  };
}

/** Member events that do nothing but count drains (per device id) and record publishes. */
export function quietEvents(
  id: string,
  drains?: Map<string, number>,
  over: Partial<MemberEvents> = {},
): MemberEvents {
  return {
    onPublish: () => {},
    onAck: () => {},
    onGatewayError: () => {},
    onDrain: () => drains?.set(id, (drains.get(id) ?? 0) + 1),
    ...over,
  };
}

export interface Link {
  broker: Aedes;
  /** The north connections the hub opened, in order (each a fresh gated pair). */
  pairs: Array<GatedPair>;
  /** The current (last opened) north connection. */
  pair: GatedPair;
  hub: GatewayHub;
  members: Map<string, GatewayMember>;
  drains: Map<string, number>;
  stop(): Promise<void>;
}

/** A gateway hub whose link runs to aedes over gated pairs, with these devices attached. */
export async function startLink(
  ids: string[],
  opts: {
    authorizePublish?: AedesOptions['authorizePublish'];
    limits?: { device: number; link: number };
    log?: Logger;
    timeoutMs?: number;
    onError?: GatewayEnv['onError'];
    /** See gatedPair. */
    coalesceMs?: number;
  } = {},
): Promise<Link> {
  const broker = await Aedes.createBroker(
    opts.authorizePublish ? { authorizePublish: opts.authorizePublish } : {},
  );
  broker.on('clientError', () => undefined);
  broker.on('connectionError', () => undefined);
  const pairs: Array<GatedPair> = [];
  const transport: CompiledTransport = {
    url: parseNorthUrl('mqtt://127.0.0.1:1883'),
    open: async () => {
      const pair = gatedPair(opts.coalesceMs);
      pairs.push(pair);
      broker.handle(pair.brokerSide);
      return pair.proxySide;
    },
  };
  const hub = new GatewayHub({
    transport: () => transport,
    timeoutMs: opts.timeoutMs ?? 5000,
    maxPacketBytes: 1 << 20,
    log: opts.log ?? silentLogger,
    ...(opts.onError ? { onError: opts.onError } : {}),
    ...(opts.limits
      ? { maxInflightPerDevice: opts.limits.device, maxInflightPerLink: opts.limits.link }
      : {}),
  });
  const drains = new Map<string, number>();
  const members = new Map<string, GatewayMember>();
  for (const id of ids) members.set(id, await hub.attach(plan(id), quietEvents(id, drains)));
  const stop = async (): Promise<void> => {
    hub.close();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  };
  return {
    broker,
    pairs,
    get pair() {
      return pairs[pairs.length - 1] as GatedPair;
    },
    hub,
    members,
    drains,
    stop,
  };
}

/** A mapper that sends each uplink to the device's events topic and each downlink as `down`. */
export function eventsMapper(deviceId: string, over: Partial<SessionMapper> = {}): SessionMapper {
  return testMapper({
    uplink: (p) => ({
      verdict: 'continue',
      rule: 'test',
      north: [
        { topic: `/devices/${deviceId}/events`, payload: Buffer.from(p.payload), qos: p.qos, retain: false },
      ],
    }),
    downlink: (p) => ({
      verdict: 'continue',
      rule: 'test',
      south: [{ topic: 'down', payload: Buffer.from(p.payload), qos: p.qos, retain: false }],
    }),
    ...over,
  });
}

export interface Device {
  session: Session;
  metrics: Metrics;
  /** Every packet the session sent to the device, in order. */
  packets: Packet[];
  send(p: Packet): void;
  /** Resolves with the CONNACK. */
  connect(): Promise<Packet>;
  /** The device's connection drops (no DISCONNECT). */
  vanish(): void;
  /** The device stops reading its socket (a slow device), then reads again. */
  pause(): void;
  resume(): void;
  isClosed(): boolean;
  /** Close reasons counted so far (closes_total labels). */
  reasons(): Promise<string[]>;
}

/** A real Session of device `deviceId`, attached through `hub` with `plan(deviceId)`. */
export function gatewayDevice(
  hub: GatewayHub,
  deviceId: string,
  o: { mapper?: SessionMapper; plan?: GatewayPlan } = {},
): Device {
  const mapper = o.mapper ?? eventsMapper(deviceId);
  const route: RouteHandler = {
    name: 'unit-gateway',
    passThrough: false,
    async openSession() {
      return {
        accept: true,
        north: o.plan ?? plan(deviceId),
        mapper,
        quirks: PASS_QUIRKS,
        dialect: 'unit',
      };
    },
  };
  const c = startSession(route, 4, { northConnectTimeoutMs: 5000 }, hub);
  return {
    session: c.session,
    metrics: c.metrics,
    packets: c.packets,
    send: c.send,
    async connect() {
      c.send({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: deviceId,
        clean: true,
        keepalive: 0,
      });
      await until(() => c.packets.some((p) => p.cmd === 'connack'), 5000, `the CONNACK of ${deviceId}`);
      return c.packets.find((p) => p.cmd === 'connack') as Packet;
    },
    vanish: () => c.end(),
    pause: c.pause,
    resume: c.resume,
    isClosed: c.isClosed,
    reasons: c.reasons,
  };
}

/** Lets pending I/O callbacks and timers of this turn run. */
export function settle(ms = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
