/**
 * One south client: its CONNECT, its north connection, and the two relays between them.
 * Packets are handled one handler per type; every close goes through `close()`.
 *
 *   south bytes → PacketChannel → onSouthPacket → mapper.uplink → Relay(up) → NorthClient
 *   north bytes → NorthClient → onNorthPublish → mapper.downlink → Relay(down) → PacketChannel
 */
import type { Duplex } from 'node:stream';
import type {
  IConnackPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  IUnsubscribePacket,
  Packet,
  QoS,
} from 'mqtt-packet';
import { PacketChannel } from '../codec/channel.js';
import type { Outcome, PublishOut, Quirks, SessionMapper } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import type { NorthPort } from '../upstream/port.js';
import { countMessage, observeTranslate, sampleTranslate, subackCodes } from './accounting.js';
import { resolveAlias } from './aliases.js';
import { connackFor, REFUSED_SERVER_UNAVAILABLE, type ReasonPair } from './codes.js';
import type { SessionContext, SessionLike } from './context.js';
import { type NorthRefusal, openNorth } from './north-open.js';
import { IdAllocator, Relay } from './relay.js';
import { violation } from './validate.js';

type State = 'new' | 'connecting' | 'online' | 'closed';

export interface SouthInfo {
  listener: string;
  remoteAddress?: string;
  peerCommonName?: string;
  /** Set for a device attached by a south gateway: the gateway's id. */
  gateway?: string;
}

export class Session implements SessionLike {
  private state: State = 'new';
  private readonly south: PacketChannel;
  private north?: NorthPort;
  /** Highest QoS sent north (a gateway platform refuses QoS 2). */
  private northMaxQos: QoS = 2;
  private mapper?: SessionMapper;
  private quirks!: Quirks;
  private passThrough = true;
  private version: 3 | 4 | 5 = 4;
  private keepaliveMs = 0;
  /** MQTT 5 session expiry the client asked for at CONNECT (seconds). */
  private sessionExpiry = 0;
  private readonly createdAt = Date.now();
  private readonly southIds = new IdAllocator();
  private up?: Relay;
  private down?: Relay;
  /** South packets that arrived while CONNECT or an async uplink was being handled. */
  private queue: Packet[] = [];
  private busy = false;
  private southAliases?: Map<number, string>;
  private northAliases?: Map<number, string>;
  /** The per-connection logger, made on first use: idle devices should cost little memory. */
  private logger?: Logger;
  private dialect = 'unknown';
  private routeName = '';
  private draining?: () => void;

  constructor(
    stream: Duplex,
    private readonly info: SouthInfo,
    private readonly ctx: SessionContext,
  ) {
    this.south = new PacketChannel(
      stream,
      {
        onPacket: (p, bytes) => this.onSouthPacket(p, bytes),
        onClose: (reason, err) => this.close(reason, err),
        onDrain: () => this.north?.resume(),
        lastWords: (reason): Packet | undefined => {
          if (this.state === 'new' && reason === 'unsupported_protocol_version') {
            return { cmd: 'connack', returnCode: 1, sessionPresent: false };
          }
          const code = this.state === 'online' && this.version === 5 ? DISCONNECT_CODES[reason] : undefined;
          return code === undefined ? undefined : { cmd: 'disconnect', reasonCode: code };
        },
      },
      {
        maxPacketBytes: ctx.limits.maxPacketBytes,
        protocolVersion: 0,
        onWritten: (cmd, bytes) => ctx.meter.count('south_out', cmd, bytes),
      },
    );
    ctx.sessions.add(this);
  }

  // ---------------------------------------------------------------- south side

  private onSouthPacket(p: Packet, bytes: number): void {
    this.ctx.meter.count('south_in', p.cmd, bytes);
    const bad = violation(p, this.version);
    if (bad) {
      this.close(bad);
      return;
    }
    if (this.state === 'online' && !this.busy) {
      this.dispatchSouth(p);
      return;
    }
    if (this.state === 'new') {
      if (p.cmd !== 'connect') {
        this.close('packet_before_connect');
        return;
      }
      void this.onConnect(p);
      return;
    }
    if (p.cmd === 'connect') {
      this.close('second_connect');
      return;
    }
    if (this.state !== 'closed') this.queue.push(p);
  }

  private dispatchSouth(p: Packet): void {
    switch (p.cmd) {
      case 'publish':
        this.onSouthPublish(p);
        return;
      case 'puback':
      case 'pubrec':
      case 'pubcomp':
        if (this.quirks.clientAcksDisconnect) {
          this.close('client_ack_not_allowed');
          return;
        }
        // The wrong kind of acknowledgement (PUBCOMP for a QoS 1 message, ...) is a protocol error.
        if (this.down?.onDestinationAck(p) === 'unexpected') this.close('unexpected_ack');
        return;
      case 'pubrel':
        if (this.quirks.clientAcksDisconnect) {
          this.close('client_ack_not_allowed');
          return;
        }
        this.up?.onSourcePubrel(p.messageId ?? 0);
        return;
      case 'subscribe':
        this.onSouthSubscribe(p);
        return;
      case 'unsubscribe':
        this.onSouthUnsubscribe(p);
        return;
      case 'pingreq':
        this.south.write({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        this.onSouthDisconnect(p);
        return;
      case 'connect':
        this.close('second_connect');
        return;
      default:
        this.close(`unexpected_${p.cmd}`);
    }
  }

  private async onConnect(connect: IConnectPacket): Promise<void> {
    this.state = 'connecting';
    this.south.pause();
    this.version = connect.protocolVersion ?? 4;
    this.south.setProtocolVersion(this.version);
    // A gateway's attached device is silent between messages: the gateway's own connection is
    // the one whose keepalive is enforced (by its front).
    this.keepaliveMs = this.info.gateway ? 0 : (connect.keepalive ?? 0) * 1500;
    this.sessionExpiry = connect.properties?.sessionExpiryInterval ?? 0;
    // MQTT 3.1: the client identifier must be 1 to 23 characters (CONNACK 2 otherwise).
    if (this.version === 3 && !connect.clientId) {
      this.refuse({ returnCode: 2, reasonCode: 0x85 }, 'identifier_rejected');
      return;
    }
    const route = this.ctx.route();
    this.routeName = route.name;
    let decision: Awaited<ReturnType<typeof route.openSession>>;
    try {
      decision = await route.openSession({
        connect,
        listener: this.info.listener,
        peerCommonName: this.info.peerCommonName,
        remoteAddress: this.info.remoteAddress,
        gateway: this.info.gateway,
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'route failed to open the session');
      this.refuse(REFUSED_SERVER_UNAVAILABLE, 'route_error');
      return;
    }
    if (this.closed) {
      if (decision.accept) decision.mapper.close();
      return;
    }
    if (!decision.accept) {
      this.ctx.metrics.authFailuresTotal.labels(decision.reason).inc();
      this.log.info({ reason: decision.reason }, 'connection refused');
      this.refuse({ returnCode: decision.returnCode, reasonCode: decision.reasonCode }, decision.reason);
      return;
    }
    this.mapper = decision.mapper;
    this.quirks = decision.quirks;
    this.passThrough = route.passThrough;
    this.dialect = decision.dialect;
    let opened: Awaited<ReturnType<typeof openNorth>>;
    try {
      opened = await openNorth(decision.north, this.quirks, this.ctx, this.routeName, this.log, {
        onPublish: (pk) => this.onNorthPublish(pk),
        onAck: (pk) => {
          if (this.up?.onDestinationAck(pk) === 'unexpected') this.close('north_unexpected_ack');
        },
        onPubrel: (id) => this.down?.onSourcePubrel(id),
        onDisconnect: (pk) => this.onNorthDisconnect(pk),
        onClose: (reason) => this.close(`north_${reason}`),
        onDrain: () => this.flushQueue(),
        onGatewayError: (e) => this.onGatewayError(e),
      });
    } catch (err) {
      const r = err as NorthRefusal;
      // The broker closed on the CONNECT without answering: do the same (transparency).
      if (r.reason === 'north_closed') this.close(r.reason);
      else this.refuse(r.code ?? REFUSED_SERVER_UNAVAILABLE, r.reason ?? 'north_error', r.connack);
      return;
    }
    if (opened) {
      this.north = opened.port;
      this.northMaxQos = opened.maxQos;
      if (this.closed) {
        this.north.destroy();
        return;
      }
    }
    this.goOnline(opened?.connack);
  }

  private goOnline(northConnack?: IConnackPacket): void {
    const metrics = this.ctx.metrics;
    const sessionPresent =
      this.quirks.sessionPresent === 'always'
        ? true
        : this.quirks.sessionPresent === 'never'
          ? false
          : Boolean(northConnack?.sessionPresent);
    const connack: IConnackPacket = { cmd: 'connack', sessionPresent, returnCode: 0, reasonCode: 0 };
    if (this.version === 5 && northConnack?.properties) connack.properties = northConnack.properties;
    this.south.write(connack);
    const north = this.north;
    const ackHooks = (direction: 'uplink' | 'downlink') => {
      const gauge = metrics.inflight.labels(direction);
      const hist = metrics.ackSeconds.labels(this.routeName, direction);
      return {
        onStart: () => gauge.inc(),
        onSettled: (t0: number) => {
          gauge.dec();
          if (t0 >= 0) hist.observe((Date.now() - t0) / 1000);
          this.checkDrained();
        },
      };
    };
    const southPeer = { send: (p: Packet) => this.south.write(p) };
    if (north) {
      const northPeer = { send: (p: Packet) => north.send(p) };
      this.up = new Relay(southPeer, northPeer, north.ids, ackHooks('uplink'));
      this.down = new Relay(northPeer, southPeer, this.southIds, ackHooks('downlink'));
    } else {
      const nowhere = { send: () => false };
      this.up = new Relay(southPeer, nowhere, new IdAllocator(), ackHooks('uplink'));
      this.down = new Relay(nowhere, southPeer, this.southIds, ackHooks('downlink'));
    }
    this.state = 'online';
    metrics.connectionsOpen.labels(this.info.listener, this.dialect).inc();
    metrics.connectionsTotal.labels(this.info.listener, this.dialect).inc();
    const mapper = this.mapper!;
    const auto = mapper.autoSubscribe();
    if (auto.length && north) {
      north.subscribe(auto).catch(() => this.log.warn('automatic north subscription failed'));
    }
    north?.start();
    const online = mapper.onOnline?.();
    if (online)
      this.runAsync(
        Promise.resolve(online).then((outs) => ({ south: outs })),
        null,
      );
    this.flushQueue();
  }

  private refuse(code: ReasonPair, reason: string, northConnack?: IConnackPacket): void {
    this.south.write(connackFor(this.version, code, northConnack));
    this.close(reason);
  }

  private onSouthPublish(p: IPublishPacket): void {
    const q = this.quirks;
    if (p.qos === 0 && p.dup && q.dupWithQos0Disconnect) {
      this.close('dup_with_qos0');
      return;
    }
    if (q.maxPayloadBytes > 0 && p.payload.length > q.maxPayloadBytes) {
      this.close('payload_too_large');
      return;
    }
    // QoS 2 as QoS 0: no acknowledgement at all. As QoS 1: the client still gets its QoS 2
    // flow (PUBREC, PUBCOMP), the copies go north at QoS 1.
    if (q.qos2 === 'as_qos0' && p.qos === 2) p.qos = 0;
    if (q.retain === 'ignore') p.retain = false;
    if (!this.passThrough && this.version === 5 && p.properties?.topicAlias !== undefined) {
      this.southAliases ??= new Map();
      if (!resolveAlias(p, this.southAliases)) {
        this.close('bad_topic_alias');
        return;
      }
    }
    if (this.passThrough) {
      // Fast path: nothing to translate, the parsed packet is its own output.
      const src = { messageId: p.messageId, qos: p.qos };
      const out = p as PublishOut;
      const cap = this.northQosFor(p);
      if (out.qos > cap) out.qos = cap;
      this.up!.forward(src, [out]);
      if (this.north?.blocked) this.south.pause();
      return;
    }
    const timed = sampleTranslate();
    const t0 = timed ? process.hrtime.bigint() : 0n;
    const outcome = this.mapper!.uplink(p);
    if (timed) observeTranslate(this.ctx.metrics, this.routeName, 'uplink', t0);
    if (outcome instanceof Promise) {
      this.runAsync(outcome, p);
      return;
    }
    this.applyUplink(p, outcome);
  }

  /** Runs an async uplink outcome while holding back later south packets, preserving order. */
  private runAsync(outcome: Promise<Outcome>, p: IPublishPacket | null): void {
    this.busy = true;
    this.south.pause();
    outcome
      .then(
        (o) => {
          if (this.state === 'closed') return;
          if (p) this.applyUplink(p, o);
          else if (o.south) this.sendLocalSouth(o.south);
        },
        (err: Error) => {
          this.log.error({ err: err.message }, 'uplink mapping failed');
          this.close('mapping_error');
        },
      )
      .finally(() => {
        this.busy = false;
        this.flushQueue();
      });
  }

  private flushQueue(): void {
    while (this.queue.length && !this.busy && this.state === 'online') {
      this.dispatchSouth(this.queue.shift()!);
    }
    if (!this.busy && this.state === 'online' && !this.draining && !this.north?.blocked) this.south.resume();
  }

  private applyUplink(p: IPublishPacket, o: Outcome): void {
    if (o.verdict === 'disconnect') {
      countMessage(this.ctx.metrics, this.log, this.routeName, 'uplink', o, 'rejected', p.topic);
      this.close(o.reason ?? 'rejected');
      return;
    }
    const north = o.verdict === 'drop' ? undefined : o.north;
    if (o.verdict === 'drop')
      countMessage(this.ctx.metrics, this.log, this.routeName, 'uplink', o, 'dropped', p.topic);
    else if (!this.passThrough)
      countMessage(this.ctx.metrics, this.log, this.routeName, 'uplink', o, 'translated');
    if (north) capQos(north, this.northQosFor(p));
    this.up!.forward(p, north ?? []);
    if (o.south) this.sendLocalSouth(o.south);
    if (this.north?.blocked) this.south.pause();
  }

  /** Highest QoS the copies of a client's PUBLISH get north (QoS 2 as QoS 1, the platform's cap). */
  private northQosFor(p: IPublishPacket): QoS {
    const q: QoS = this.quirks.qos2 === 'as_qos1' && p.qos === 2 ? 1 : p.qos;
    return Math.min(q, this.northMaxQos) as QoS;
  }

  private sendLocalSouth(outs: PublishOut[]): void {
    capQos(outs, Math.min(1, this.quirks.maxDownlinkQos) as QoS);
    this.down!.forward(null, outs);
  }

  private onSouthSubscribe(p: ISubscribePacket): void {
    const plan = this.mapper!.subscribe(p);
    if (plan.disconnect) {
      this.close(plan.disconnect);
      return;
    }
    const reply = (northCodes: number[]) => {
      this.south.write({
        cmd: 'suback',
        messageId: p.messageId,
        granted: subackCodes(plan, northCodes, this.version),
      });
      if (plan.south?.length) this.sendLocalSouth(plan.south);
    };
    if (plan.north.length === 0 || !this.north) {
      reply([]);
      return;
    }
    this.north.subscribe(plan.north, plan.properties).then(reply, () => {
      /* north closed: the session closes with it */
    });
  }

  private onSouthUnsubscribe(p: IUnsubscribePacket): void {
    const plan = this.mapper!.unsubscribe(p);
    const reply = (codes: number[]) => {
      const packet: Packet = { cmd: 'unsuback', messageId: p.messageId, granted: [] };
      if (this.version === 5) packet.granted = p.unsubscriptions.map((_, i) => codes[i] ?? 0);
      this.south.write(packet);
    };
    if (plan.ackOnly || plan.north.length === 0 || !this.north) {
      reply([]);
      return;
    }
    const passCodes = plan.north.length === p.unsubscriptions.length;
    this.north.unsubscribe(plan.north, p.properties).then(
      (codes) => reply(passCodes ? codes : []),
      () => {},
    );
  }

  private onSouthDisconnect(p: IDisconnectPacket): void {
    // MQTT-3.14.2-2: a session that expired at once cannot be given an expiry on DISCONNECT.
    if (this.version === 5 && !this.sessionExpiry && p.properties?.sessionExpiryInterval) {
      this.close('session_expiry_after_zero');
      return;
    }
    // Forward the DISCONNECT so the broker knows it was a normal close (no will message).
    const north = this.north;
    this.north = undefined;
    north?.end(this.quirks.will === 'pass' || this.version === 5 ? p : { cmd: 'disconnect' });
    this.close('client_disconnect');
  }

  // ---------------------------------------------------------------- north side

  private onNorthPublish(p: IPublishPacket): void {
    if (this.state !== 'online') return;
    if (!this.passThrough && p.properties?.topicAlias !== undefined) {
      this.northAliases ??= new Map();
      if (!resolveAlias(p, this.northAliases)) {
        this.close('north_bad_topic_alias');
        return;
      }
    }
    if (this.passThrough) {
      if (p.qos > this.quirks.maxDownlinkQos) p.qos = this.quirks.maxDownlinkQos;
      this.down!.forward(p, [p as PublishOut]);
      if (this.south.blocked) this.north?.pause();
      return;
    }
    const timed = sampleTranslate();
    const t0 = timed ? process.hrtime.bigint() : 0n;
    const o = this.mapper!.downlink(p);
    if (timed) observeTranslate(this.ctx.metrics, this.routeName, 'downlink', t0);
    if (o.verdict === 'disconnect') {
      countMessage(this.ctx.metrics, this.log, this.routeName, 'downlink', o, 'rejected', p.topic);
      this.close(o.reason ?? 'downlink_rejected');
      return;
    }
    const outs = o.verdict === 'drop' ? [] : (o.south ?? []);
    if (o.verdict === 'drop')
      countMessage(this.ctx.metrics, this.log, this.routeName, 'downlink', o, 'dropped', p.topic);
    else if (!this.passThrough)
      countMessage(this.ctx.metrics, this.log, this.routeName, 'downlink', o, 'translated');
    capQos(outs, Math.min(p.qos, this.quirks.maxDownlinkQos) as QoS);
    this.down!.forward(p, outs);
    if (o.north?.length) {
      capQos(o.north, 1);
      this.up!.forward(null, o.north);
    }
    if (this.south.blocked) this.north?.pause();
  }

  private onGatewayError(e: { type: string; description?: string }): void {
    const o = this.mapper?.onGatewayError?.(e);
    if (!o) return;
    if (o.verdict === 'disconnect') {
      this.close(o.reason ?? 'gateway_error');
      return;
    }
    if (o.south?.length) this.sendLocalSouth(o.south);
  }

  private onNorthDisconnect(p: IDisconnectPacket): void {
    if (this.version === 5) this.south.write(p);
    this.close('north_disconnect');
  }

  // ---------------------------------------------------------------- lifecycle

  private get log(): Logger {
    this.logger ??= this.ctx.log.child({
      conn: this.info.remoteAddress,
      listener: this.info.listener,
      dialect: this.dialect,
    });
    return this.logger;
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  private get closed(): boolean {
    return this.state === 'closed';
  }

  tick(now: number): void {
    if (this.state === 'new' && now - this.createdAt > this.ctx.limits.connectTimeoutMs) {
      this.close('connect_timeout');
      return;
    }
    // A route or store that never answers must not hold the connection forever.
    const limits = this.ctx.limits;
    if (
      this.state === 'connecting' &&
      now - this.createdAt > limits.connectTimeoutMs + limits.northConnectTimeoutMs
    ) {
      this.refuse(REFUSED_SERVER_UNAVAILABLE, 'connect_timeout');
      return;
    }
    if (this.state !== 'online') return;
    if (this.keepaliveMs > 0 && now - this.south.lastReadAt > this.keepaliveMs) {
      this.close('keepalive_timeout');
      return;
    }
    if (this.north && !this.north.tick(now)) this.close('north_keepalive_timeout');
  }

  drain(graceMs: number): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.south.pause();
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish('shutdown_grace_expired'), graceMs);
      const finish = (reason: string) => {
        clearTimeout(timer);
        this.draining = undefined;
        if (this.state !== 'closed' && this.version === 5) {
          this.south.write({ cmd: 'disconnect', reasonCode: 0x8b });
        }
        this.close(reason);
        resolve();
      };
      this.draining = () => finish('shutdown');
      this.checkDrained();
    });
  }

  private checkDrained(): void {
    if (this.draining && (this.up?.size ?? 0) === 0 && (this.down?.size ?? 0) === 0) this.draining();
  }

  close(reason: string, err?: Error): void {
    if (this.state === 'closed') return;
    const wasOnline = this.state === 'online';
    this.state = 'closed';
    this.queue = [];
    this.ctx.sessions.delete(this);
    const m = this.ctx.metrics;
    m.closesTotal.labels(reason).inc();
    if (wasOnline) m.connectionsOpen.labels(this.info.listener, this.dialect).dec();
    // MQTT 5: a server closing for the client's fault says why (DISCONNECT with a reason code).
    const code = wasOnline && this.version === 5 ? DISCONNECT_CODES[reason] : undefined;
    if (code !== undefined) this.south.write({ cmd: 'disconnect', reasonCode: code });
    if (reason === 'internal_error') {
      this.log.error({ reason, err: err?.stack }, 'connection closed by an internal error');
    } else {
      const quiet = reason === 'client_disconnect' || reason === 'peer_closed' || reason === 'shutdown';
      this.log[quiet ? 'debug' : 'info']({ reason, err: err?.message }, 'connection closed');
    }
    this.up?.clear();
    this.down?.clear();
    this.mapper?.close();
    // No DISCONNECT north unless the client sent one: the broker then publishes the will.
    this.north?.destroy();
    this.south.end();
  }
}

/**
 * Close reasons that an MQTT 5 client is told with DISCONNECT, and their reason codes: the
 * protocol errors mosquitto reports this way too (its broker test suite runs through the
 * proxy, test/conformance). A packet the parser cannot read is closed without a word.
 */
const DISCONNECT_CODES: Record<string, number> = {
  malformed_topic: 0x81,
  empty_unsubscribe: 0x81,
  session_expiry_after_zero: 0x82,
};

function capQos(outs: PublishOut[], max: QoS): void {
  for (const o of outs) if (o.qos > max) o.qos = max;
}
