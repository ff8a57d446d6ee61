/**
 * A Session on an in-memory stream pair, with a test route (north mode 'local': no network)
 * whose decision, quirks and mapper each test chooses. The test plays the MQTT client on the
 * far end of the pair with real mqtt-packet bytes.
 */
import type { Duplex } from 'node:stream';
import mqtt, { type IConnectPacket, type Packet } from 'mqtt-packet';
import {
  type ConnectDecision,
  type Outcome,
  PASS_QUIRKS,
  type Quirks,
  type RouteHandler,
  type SessionMapper,
  type SouthHello,
} from '../../src/core/contract.js';
import { streamPair } from '../../src/listeners/native-ws.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import type { SessionContext, SessionLike } from '../../src/session/context.js';
import { PacketMeter } from '../../src/session/meter.js';
import { Session } from '../../src/session/session.js';
import type { CompiledTransport } from '../../src/upstream/transport.js';
import { turn, until } from './kit.js';

/** A mapper whose every method can be replaced; by default it forwards nothing and grants 0. */
export function testMapper(over: Partial<SessionMapper> = {}): SessionMapper & { closed: number } {
  const m = {
    closed: 0,
    uplink: (): Outcome => ({ verdict: 'continue', rule: 'test' }),
    downlink: (): Outcome => ({ verdict: 'drop' }),
    subscribe: (p: { subscriptions: unknown[] }) => ({
      north: [],
      granted: p.subscriptions.map(() => ({ code: 0 })),
    }),
    unsubscribe: () => ({ north: [], ackOnly: true }),
    autoSubscribe: () => [],
    close() {
      m.closed++;
    },
    ...over,
  };
  return m as SessionMapper & { closed: number };
}

export interface RouteOptions {
  /** Refuse with these codes instead of accepting. */
  refuse?: { returnCode: number; reasonCode: number; reason: string };
  quirks?: Partial<Quirks>;
  mapper?: SessionMapper;
  /** Resolved before openSession answers (to hold the session in 'connecting'). */
  gate?: Promise<void>;
  /** openSession throws. */
  fail?: boolean;
}

export function testRoute(o: RouteOptions = {}): RouteHandler & { hellos: SouthHello[] } {
  const hellos: SouthHello[] = [];
  return {
    name: 'unit',
    passThrough: false,
    hellos,
    async openSession(hello): Promise<ConnectDecision> {
      hellos.push(hello);
      if (o.gate) await o.gate;
      if (o.fail) throw new Error('identity source down');
      if (o.refuse) return { accept: false, ...o.refuse };
      return {
        accept: true,
        north: { mode: 'local' },
        mapper: o.mapper ?? testMapper(),
        quirks: { ...PASS_QUIRKS, ...o.quirks },
        dialect: 'unit',
      };
    },
  };
}

export interface Client {
  session: Session;
  ctx: SessionContext;
  metrics: Metrics;
  /** Every packet the session sent to the client, in order. */
  packets: Packet[];
  send(p: Packet): void;
  write(b: Buffer): void;
  /** Waits until at least n packets arrived; returns them all. */
  waitPackets(n: number): Promise<Packet[]>;
  /** Waits until the session closed the stream; returns the close reasons counted. */
  waitClosed(): Promise<string[]>;
  isClosed(): boolean;
  /** Close reasons counted so far (closes_total labels). */
  reasons(): Promise<string[]>;
  end(): void;
  /** The client stops reading what the session sends (a slow device), then reads again. */
  pause(): void;
  resume(): void;
}

export function connect(over: Partial<IConnectPacket> = {}): IConnectPacket {
  const v = over.protocolVersion ?? 4;
  return {
    cmd: 'connect',
    protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    clientId: 'unit-1',
    clean: true,
    keepalive: 0,
    ...over,
  };
}

/** What a unit session shares: `route`, no north transport (a gateway link instead, when given). */
export function testContext(
  route: RouteHandler,
  o: { limits?: Partial<SessionContext['limits']>; gateways?: SessionContext['gateways'] } = {},
): SessionContext {
  const metrics = createMetrics();
  return {
    route: () => route,
    transport: (): CompiledTransport => {
      throw new Error('a unit session opens no north connection of its own');
    },
    limits: {
      maxPacketBytes: 65536,
      connectTimeoutMs: 10_000,
      northConnectTimeoutMs: 1000,
      gatewayInflight: 1000,
      ...o.limits,
    },
    metrics,
    meter: new PacketMeter(metrics),
    log: silentLogger,
    sessions: new Set<SessionLike>(),
    ...(o.gateways ? { gateways: o.gateways } : {}),
  };
}

/** A session on a stream pair; `version` is how the client parses what it receives. */
export function startSession(
  route: RouteHandler,
  version: 3 | 4 | 5 = 4,
  limits: Partial<SessionContext['limits']> = {},
  gateways?: SessionContext['gateways'],
): Client {
  const [inner, outer]: [Duplex, Duplex] = streamPair();
  const ctx = testContext(route, { limits, gateways });
  const metrics = ctx.metrics;
  const session = new Session(inner, { listener: 'tcp', remoteAddress: '127.0.0.1' }, ctx);
  const parser = mqtt.parser({ protocolVersion: version });
  const packets: Packet[] = [];
  let closed = false;
  parser.on('packet', (p: Packet) => packets.push(p));
  const parseErrors: Error[] = [];
  parser.on('error', (e: Error) => parseErrors.push(e));
  outer.on('data', (b: Buffer) => parser.parse(b));
  outer.on('end', () => {
    closed = true;
  });
  outer.on('close', () => {
    closed = true;
  });
  outer.on('error', () => undefined);
  const reasons = async (): Promise<string[]> =>
    (await metrics.closesTotal.get()).values.filter((v) => v.value > 0).map((v) => String(v.labels.reason));
  return {
    session,
    ctx,
    metrics,
    packets,
    send(p) {
      if (!outer.destroyed && !outer.writableEnded)
        outer.write(mqtt.generate(p, { protocolVersion: version }));
    },
    write(b) {
      outer.write(b);
    },
    async waitPackets(n) {
      await until(() => packets.length >= n || parseErrors.length > 0, 3000, `${n} packets`);
      if (parseErrors.length) throw parseErrors[0];
      await turn();
      return packets;
    },
    async waitClosed() {
      await until(() => closed, 3000, 'session close');
      return reasons();
    },
    isClosed: () => closed,
    reasons,
    end() {
      outer.destroy();
    },
    pause() {
      outer.pause();
    },
    resume() {
      outer.resume();
    },
  };
}

/** Connects and waits for the CONNACK; returns it. */
export async function online(c: Client, over: Partial<IConnectPacket> = {}): Promise<Packet> {
  c.send(connect(over));
  const [connack] = await c.waitPackets(1);
  return connack!;
}
