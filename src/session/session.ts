/**
 * One south client: its CONNECT, its north connection, and the two relays between them.
 * The session is the per-connection state machine (new → connecting → online → closed): it
 * owns the state, queues south packets while CONNECT or an async uplink is pending, dispatches
 * one handler per packet type and makes the relays; the handlers live beside it as functions
 * over its state (`SessionState`). Every close goes through `close()`.
 *
 *   south bytes → PacketChannel → onSouthPacket → connect.ts | uplink.ts | subscriptions.ts
 *     | closing.ts | key-auth.ts (a key on a topic, after a CONNECT without one);  uplink: mapper.uplink → Relay(up) → NorthClient
 *   north bytes → NorthClient → NorthSide (north-side.ts) → downlink.ts: mapper.downlink
 *     → Relay(down) → PacketChannel
 */
import type { Duplex } from 'node:stream';
import type { IPublishPacket, Packet, QoS } from 'mqtt-packet';
import { type ChannelEvents, PacketChannel } from '../codec/channel.js';
import { IdAllocator } from '../codec/packet-ids.js';
import type { Outcome, Quirks, SessionMapper } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { peerName } from '../log/peer-name.js';
import type { NorthPort } from '../upstream/port.js';
import { checkDrained, closeSession, drainSession, lastWords, southDisconnect } from './closing.js';
import { REFUSED_SERVER_UNAVAILABLE } from './codes.js';
import { refuse, southConnect } from './connect.js';
import type { SessionContext, SessionLike } from './context.js';
import { sendLocalSouth } from './downlink.js';
import { authenticate, KEY_WAIT_MS, keyOfPacket } from './key-auth.js';
import { ChannelPeer, NOWHERE } from './north-side.js';
import { Relay, type RelayPeer } from './relay.js';
import { AckHooks, meterWritten } from './session-metrics.js';
import type { SessionState, SouthInfo, State } from './state.js';
import { southSubscribe, southUnsubscribe } from './subscriptions.js';
import { applyUplink, southPublish } from './uplink.js';
import { violation } from './validate.js';

export type { SouthInfo } from './state.js';

/**
 * The session is its south channel's event handler (methods, not per-session closures: an
 * idle device should cost little memory); its north side has one small handler object.
 */
export class Session implements SessionLike, SessionState, ChannelEvents {
  state: State = 'new';
  readonly south: PacketChannel;
  north?: NorthPort;
  /** Highest QoS sent north (a gateway platform refuses QoS 2). */
  northMaxQos: QoS = 2;
  mapper?: SessionMapper;
  quirks!: Quirks;
  passThrough = true;
  version: 3 | 4 | 5 = 4;
  keepaliveMs = 0;
  /** MQTT 5 session expiry the client asked for at CONNECT (seconds). */
  sessionExpiry = 0;
  private readonly createdAt = Date.now();
  /** The relays, made on first use once online: an idle device never needs them. */
  upRelay?: Relay;
  downRelay?: Relay;
  /** The session went online (it may be closed since): relays may be made. */
  wentOnline = false;
  /** South packets that arrived while CONNECT or an async uplink was being handled. */
  private queue: Packet[] = [];
  private busy = false;
  southAliases?: Map<number, string>;
  /** The Topic Alias Maximum the client's CONNACK gave it (0: none, aliases forbidden). */
  southAliasMax = 0;
  northAliases?: Map<number, string>;
  /** The per-connection logger, made on first use: idle devices should cost little memory. */
  private logger?: Logger;
  dialect = 'unknown';
  routeName = '';
  draining?: () => void;
  awaitingKey?: SessionState['awaitingKey'];

  constructor(
    stream: Duplex,
    readonly info: SouthInfo,
    readonly ctx: SessionContext,
  ) {
    this.south = new PacketChannel(stream, this, {
      maxPacketBytes: ctx.limits.maxPacketBytes,
      protocolVersion: 0,
      onWritten: meterWritten(ctx.meter, 'south_out'),
    });
    ctx.sessions.add(this);
  }

  // ---------------------------------------------------------------- south channel events

  onPacket(p: Packet, bytes: number): void {
    this.onSouthPacket(p, bytes);
  }

  onClose(reason: string, err?: Error): void {
    this.close(reason, err);
  }

  onDrain(): void {
    this.north?.resume();
  }

  lastWords(reason: string): Packet | undefined {
    return lastWords(this, reason);
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
      void southConnect(this, p);
      return;
    }
    if (p.cmd === 'connect') {
      this.close('second_connect');
      return;
    }
    if (this.state !== 'closed') this.queue.push(p);
  }

  private dispatchSouth(p: Packet): void {
    // Connected without credentials: a SUBSCRIBE or PUBLISH carrying a key opens the session.
    if (this.awaitingKey !== undefined && (p.cmd === 'publish' || p.cmd === 'subscribe')) {
      const key = keyOfPacket(this, p);
      if (key !== undefined) {
        this.hold(authenticate(this, p, key));
        return;
      }
    }
    switch (p.cmd) {
      case 'publish':
        southPublish(this, p);
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
        southSubscribe(this, p);
        return;
      case 'unsubscribe':
        southUnsubscribe(this, p);
        return;
      case 'pingreq':
        this.south.write({ cmd: 'pingresp' });
        return;
      case 'disconnect':
        southDisconnect(this, p);
        return;
      case 'connect':
        this.close('second_connect');
        return;
      default:
        this.close(`unexpected_${p.cmd}`);
    }
  }

  /** Runs an async uplink outcome while holding back later south packets, preserving order. */
  runAsync(outcome: Promise<Outcome>, p: IPublishPacket | null): void {
    this.busyUntil(
      outcome.then(
        (o) => {
          if (this.state === 'closed') return;
          if (p) applyUplink(this, p, o);
          else if (o.south) sendLocalSouth(this, o.south);
        },
        (err: Error) => {
          this.log.error({ err: err.message }, 'uplink mapping failed');
          this.close('mapping_error');
        },
      ),
    );
  }

  /** Holds later south packets while `work` runs; the packet it resolves to is handled first. */
  hold(work: Promise<Packet | undefined>): void {
    this.busyUntil(
      work.then(
        (next) => {
          if (next && this.state !== 'closed') this.queue.unshift(next);
        },
        (err: Error) => this.close('internal_error', err),
      ),
    );
  }

  /** South paused and packets queued until `settled` (which never rejects), then replayed. */
  private busyUntil(settled: Promise<void>): void {
    this.busy = true;
    this.south.pause();
    void settled.finally(() => {
      this.busy = false;
      this.flushQueue();
    });
  }

  dropRelays(): void {
    this.upRelay?.clear();
    this.downRelay?.clear();
    this.upRelay = undefined;
    this.downRelay = undefined;
  }

  flushQueue(): void {
    while (this.queue.length && !this.busy && this.state === 'online') {
      this.dispatchSouth(this.queue.shift()!);
    }
    if (!this.busy && this.state === 'online' && !this.draining && !this.north?.blocked) this.south.resume();
  }

  // ---------------------------------------------------------------- relays

  /**
   * The uplink relay (south → north); undefined before the session went online. A late
   * callback after the close still finds one (a closed side sends nothing), as before.
   */
  get up(): Relay | undefined {
    if (!this.upRelay && this.wentOnline) this.makeRelays();
    return this.upRelay;
  }

  /** The downlink relay (north → south); undefined before the session went online. */
  get down(): Relay | undefined {
    if (!this.downRelay && this.wentOnline) this.makeRelays();
    return this.downRelay;
  }

  private makeRelays(): void {
    const metrics = this.ctx.metrics;
    const settled = () => checkDrained(this);
    const southPeer = new ChannelPeer(this.south);
    const north = this.north;
    const northPeer: RelayPeer = north ?? NOWHERE;
    const northIds = north ? north.ids : new IdAllocator();
    this.upRelay = new Relay(
      southPeer,
      northPeer,
      northIds,
      new AckHooks(metrics, this.routeName, 'uplink', settled),
      this.northMaxQos === 2 && this.quirks.qos2 === 'pass',
    );
    this.downRelay = new Relay(
      northPeer,
      southPeer,
      new IdAllocator(),
      new AckHooks(metrics, this.routeName, 'downlink', settled),
    );
  }

  // ---------------------------------------------------------------- lifecycle

  get log(): Logger {
    this.logger ??= this.ctx.log.child({
      // ip:port: devices behind one NAT share the address.
      conn: peerName(this.info),
      listener: this.info.listener,
      dialect: this.dialect,
    });
    return this.logger;
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  get closed(): boolean {
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
      refuse(this, REFUSED_SERVER_UNAVAILABLE, 'connect_timeout');
      return;
    }
    if (this.state !== 'online') return;
    // Connected without credentials: a key must come on a topic in time (key-auth.ts).
    if (this.awaitingKey && now - this.awaitingKey.since > KEY_WAIT_MS) {
      this.close('key_timeout');
      return;
    }
    if (this.keepaliveMs > 0 && now - this.south.lastReadAt > this.keepaliveMs) {
      this.close('keepalive_timeout');
      return;
    }
    if (this.north && !this.north.tick(now)) this.close('north_keepalive_timeout');
  }

  drain(graceMs: number, cut?: Promise<void>): Promise<void> {
    return drainSession(this, graceMs, cut);
  }

  close(reason: string, err?: Error): void {
    if (this.state === 'closed') return;
    const wasOnline = this.state === 'online';
    this.state = 'closed';
    this.queue = [];
    closeSession(this, wasOnline, reason, err);
  }
}
