/**
 * A raw MQTT client for the north side, on mqtt-packet: it sends the CONNECT the route made,
 * hands every other packet to its owner untouched, keeps the connection alive on its own
 * (PINGREQ when idle), and allocates the north packet identifiers. It never acknowledges
 * anything by itself: acknowledgements are the session's decision.
 */

import type { Duplex } from 'node:stream';
import type {
  IConnackPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPublishPacket,
  ISubscribePacket,
  ISubscription,
  IUnsubscribePacket,
  Packet,
} from 'mqtt-packet';
import { type ChannelEvents, PacketChannel, type RawPublishHandler } from '../codec/channel.js';
import { IdAllocator } from '../codec/packet-ids.js';
import { type CompiledTransport, connectFailed } from './transport.js';

export interface NorthHandlers {
  onPublish(packet: IPublishPacket): void;
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void;
  onPubrel(messageId: number): void;
  onDisconnect(packet: IDisconnectPacket): void;
  /** The connection ended after it was established. */
  onClose(reason: string): void;
  onDrain(): void;
  /** A PUBLISH frame before it is parsed (MQTT 3.1.1): true when the owner took it (an echo). */
  onRawPublish?: RawPublishHandler;
  /** The SUBACK of the subscriptions sent with the CONNECT (`ConnectOptions.subscribe`). */
  onAutoSubscribed?(granted: number[]): void;
}

/** Counts north packets (metrics): `north_in` for every packet read, `north_out` written. */
export type NorthMeter = (direction: 'north_in' | 'north_out', cmd: string, bytes: number) => void;

export class NorthConnectError extends Error {
  constructor(
    readonly reason: 'unreachable' | 'timeout' | 'refused' | 'closed',
    message: string,
    readonly connack?: IConnackPacket,
  ) {
    super(message);
  }
}

type Waiter = (packet: Packet) => void;

/** How long the proxy waits for the broker to close after a DISCONNECT before it closes itself. */
const DISCONNECT_CLOSE_WAIT_MS = 1000;

interface ConnectOptions {
  timeoutMs: number;
  maxPacketBytes: number;
  meter?: NorthMeter;
  subscribe?: ISubscription[];
}

type Connected = { client: NorthClient; connack: IConnackPacket };

/** The CONNECT in flight: settled by the CONNACK, a refusal, a close or the deadline. */
interface Pending {
  resolve(v: { client: NorthClient; connack: IConnackPacket }): void;
  reject(err: NorthConnectError): void;
  timer: NodeJS.Timeout;
}

/**
 * Filters per SUBSCRIBE or UNSUBSCRIBE written north: platforms cap a packet's size or its
 * filters (a login serving 10,000 devices subscribes a filter per device, ~400 KB at once).
 */
export const FILTERS_PER_PACKET = 100;

/** `send` for each part of `items` (FILTERS_PER_PACKET each), the answers joined in order. */
function inParts<T>(items: T[], send: (part: T[]) => Promise<number[]>): Promise<number[]> {
  const parts: Promise<number[]>[] = [];
  for (let i = 0; i < items.length; i += FILTERS_PER_PACKET)
    parts.push(send(items.slice(i, i + FILTERS_PER_PACKET)));
  return Promise.all(parts).then((answers) => answers.flat());
}

/**
 * The client is its channel's event handler (methods, not per-connection closures: an idle
 * device should cost little memory); state that only some connections need is made on use.
 */
export class NorthClient implements ChannelEvents {
  private waiters?: Map<number, Waiter>;
  private lastWriteAt = Date.now();
  private pingOutstanding = 0;
  private ended = false;
  /** Until `start()`: packets that arrived with or right after the CONNACK are held. */
  private started = false;
  private held?: Packet[];
  private pending?: Pending;
  private readonly channel: PacketChannel;
  private idSpace?: IdAllocator;
  /** Packet id of the subscriptions sent with the CONNECT until their SUBACK (0: none). */
  private autoSubId = 0;

  private constructor(
    stream: Duplex,
    private readonly handlers: NorthHandlers,
    readonly keepalive: number,
    readonly protocolVersion: 3 | 4 | 5,
    maxPacketBytes: number,
    private readonly meter: NorthMeter | undefined,
    /** Packet identifiers; shared across reconnects when a gateway link owns them. */
    ids: IdAllocator | undefined,
  ) {
    this.idSpace = ids;
    this.channel = new PacketChannel(stream, this, {
      maxPacketBytes,
      protocolVersion,
      onWritten: meter ? writtenBy(meter) : undefined,
    });
  }

  /** Packet identifiers of this connection (made on first use). */
  get ids(): IdAllocator {
    this.idSpace ??= new IdAllocator();
    return this.idSpace;
  }

  /**
   * Opens the stream, sends CONNECT and resolves with the CONNACK; rejects with
   * NorthConnectError. `opts.subscribe` is sent right behind the CONNECT, in the same write
   * (a client need not wait for the CONNACK, MQTT 3.1.1 §3.1.4, MQTT 5 §3.1.4; a broker that
   * refuses the CONNECT processes nothing after it); its SUBACK goes to
   * `handlers.onAutoSubscribed` when it comes (no promise per connect).
   */
  static connect(
    transport: CompiledTransport,
    connect: IConnectPacket,
    opts: ConnectOptions,
    handlers: NorthHandlers,
    ids?: IdAllocator,
  ): Promise<Connected> {
    const deadline = Date.now() + opts.timeoutMs;
    if (transport.dial) {
      // A plain TCP socket is written to while it connects: one deadline for connect and CONNACK.
      let stream: Duplex;
      try {
        stream = transport.dial();
      } catch (err) {
        return Promise.reject(new NorthConnectError('unreachable', (err as Error).message));
      }
      return NorthClient.handshake(stream, connect, opts, handlers, ids, deadline);
    }
    return transport.open(opts.timeoutMs).then(
      (stream) => NorthClient.handshake(stream, connect, opts, handlers, ids, deadline),
      (err: Error) => {
        throw new NorthConnectError(
          err.message.includes('timed out') ? 'timeout' : 'unreachable',
          err.message,
        );
      },
    );
  }

  /** Sends the CONNECT (and the subscriptions) on an open or connecting stream. */
  private static handshake(
    stream: Duplex,
    connect: IConnectPacket,
    opts: ConnectOptions,
    handlers: NorthHandlers,
    ids: IdAllocator | undefined,
    deadline: number,
  ): Promise<Connected> {
    const version = connect.protocolVersion ?? 4;
    const client = new NorthClient(
      stream,
      handlers,
      connect.keepalive ?? 0,
      version,
      opts.maxPacketBytes,
      opts.meter,
      ids,
    );
    return new Promise<Connected>((resolve, reject) => {
      client.pending = {
        resolve,
        reject,
        timer: setTimeout(NorthClient.connectTimedOut, Math.max(1, deadline - Date.now()), client),
      };
      client.channel.write(connect);
      const subscriptions = opts.subscribe;
      if (subscriptions?.length) {
        const messageId = client.ids.alloc();
        client.autoSubId = messageId;
        client.channel.write({ cmd: 'subscribe', messageId, subscriptions });
      }
    });
  }

  private static connectTimedOut(client: NorthClient): void {
    const connecting = (client.channel.stream as { connecting?: boolean }).connecting === true;
    client.failConnect(
      new NorthConnectError(
        'timeout',
        connecting ? 'north connection timed out' : 'north broker sent no CONNACK in time',
      ),
    );
  }

  /** The CONNECT failed: the stream is closed and the caller gets the error. */
  private failConnect(err: NorthConnectError): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    this.ended = true;
    this.channel.destroy();
    this.rejectWaiters();
    p.reject(err);
  }

  /** ChannelEvents: a packet from the broker. */
  onPacket(packet: Packet, bytes: number): void {
    this.meter?.('north_in', packet.cmd, bytes);
    const p = this.pending;
    if (!p) {
      if (this.ended) return;
      if (packet.cmd === 'suback' && this.autoSubId !== 0 && packet.messageId === this.autoSubId) {
        this.autoSubId = 0;
        this.ids.free(packet.messageId);
        this.handlers.onAutoSubscribed?.(packet.granted as number[]);
        return;
      }
      this.dispatch(packet);
      return;
    }
    if (packet.cmd !== 'connack') {
      this.failConnect(new NorthConnectError('refused', `north broker answered CONNECT with ${packet.cmd}`));
      return;
    }
    const rc = packet.reasonCode ?? packet.returnCode ?? 0;
    if (rc !== 0) {
      this.failConnect(
        new NorthConnectError('refused', `north broker refused the connection (code ${rc})`, packet),
      );
      return;
    }
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve({ client: this, connack: packet });
  }

  /** ChannelEvents: the channel closed or failed. */
  onClose(reason: string, error?: Error): void {
    if (this.pending) {
      this.failConnect(
        connectFailed(error)
          ? new NorthConnectError('unreachable', (error as Error).message)
          : new NorthConnectError('closed', `north connection closed before CONNACK (${reason})`),
      );
      return;
    }
    this.closed(reason);
  }

  /** ChannelEvents: the broker's side drained. */
  onDrain(): void {
    if (!this.pending) this.handlers.onDrain();
  }

  get blocked(): boolean {
    return this.channel.blocked;
  }

  send(packet: Packet): boolean {
    this.lastWriteAt = Date.now();
    return this.channel.write(packet);
  }

  /**
   * SUBSCRIBE; more than FILTERS_PER_PACKET filters go as several packets (an account-wide
   * filter may stand for a filter per device), their answers joined in order.
   */
  subscribe(subscriptions: ISubscription[], properties?: ISubscribePacket['properties']): Promise<number[]> {
    if (subscriptions.length > FILTERS_PER_PACKET)
      return inParts(subscriptions, (part) => this.subscribe(part, properties));
    const messageId = this.ids.alloc();
    const packet: ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions };
    if (properties && this.protocolVersion === 5) packet.properties = properties;
    return this.request(packet, messageId).then((p) => (p.cmd === 'suback' ? (p.granted as number[]) : []));
  }

  /** UNSUBSCRIBE, in parts as `subscribe`. */
  unsubscribe(topics: string[], properties?: IUnsubscribePacket['properties']): Promise<number[]> {
    if (topics.length > FILTERS_PER_PACKET)
      return inParts(topics, (part) => this.unsubscribe(part, properties));
    const messageId = this.ids.alloc();
    const packet: IUnsubscribePacket = { cmd: 'unsubscribe', messageId, unsubscriptions: topics };
    if (properties && this.protocolVersion === 5) packet.properties = properties;
    return this.request(packet, messageId).then((p) =>
      p.cmd === 'unsuback' && Array.isArray(p.granted) ? p.granted : topics.map(() => 0),
    );
  }

  pause(): void {
    this.channel.pause();
  }

  resume(): void {
    this.channel.resume();
  }

  /** Keepalive: called periodically by the proxy's sweeper. False when the broker went silent. */
  tick(now: number): boolean {
    if (this.ended || this.keepalive === 0) return true;
    const ka = this.keepalive * 1000;
    if (
      this.pingOutstanding &&
      now - this.pingOutstanding > ka / 2 + 1000 &&
      now - this.channel.lastReadAt > ka / 2
    ) {
      return false;
    }
    if (now - this.lastWriteAt >= ka * 0.75 && !this.pingOutstanding) {
      this.pingOutstanding = now;
      this.send({ cmd: 'pingreq' });
    }
    return true;
  }

  /** Graceful end: an optional DISCONNECT, flushed, then the stream closes. */
  end(disconnect?: IDisconnectPacket): void {
    if (this.ended) return;
    this.ended = true;
    if (disconnect) {
      // The broker closes on DISCONNECT: closing after it leaves the TIME_WAIT on its side,
      // not on one of the proxy's ephemeral ports toward it.
      this.channel.write(disconnect);
      this.channel.endAfterPeer(DISCONNECT_CLOSE_WAIT_MS);
    } else this.channel.end();
    this.rejectWaiters();
  }

  /**
   * Abrupt end: the broker sees a lost connection (and publishes the will). A reset when
   * nothing is left to write: no TIME_WAIT on the proxy's side (see PacketChannel.reset).
   */
  destroy(): void {
    if (this.ended) return;
    this.ended = true;
    this.channel.reset();
    this.rejectWaiters();
  }

  private request(packet: Packet, messageId: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      if (this.ended) {
        reject(new Error('north connection closed'));
        return;
      }
      this.waiters ??= new Map();
      this.waiters.set(messageId, (p) => {
        this.ids.free(messageId);
        if (p.cmd === 'disconnect') reject(new Error('north connection closed'));
        else resolve(p);
      });
      this.send(packet);
    });
  }

  private rejectWaiters(): void {
    const waiters = this.waiters;
    if (!waiters) return;
    this.waiters = undefined;
    for (const w of waiters.values()) w({ cmd: 'disconnect' });
  }

  /** ChannelEvents: a PUBLISH frame offered to the owner before parsing (see NorthHandlers). */
  onRawPublish(
    frame: Buffer,
    qos: number,
    messageId: number,
    topicStart: number,
    topicEnd: number,
    payloadStart: number,
  ): boolean {
    const take = this.handlers.onRawPublish;
    if (!take || !this.started || this.ended || this.pending) return false;
    if (!take.call(this.handlers, frame, qos, messageId, topicStart, topicEnd, payloadStart)) return false;
    this.meter?.('north_in', 'publish', frame.length);
    return true;
  }

  /** The owner is ready for packets: deliver those held since the CONNACK, then flow. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const held = this.held;
    this.held = undefined;
    if (held) for (const p of held) if (!this.ended) this.dispatch(p);
  }

  private dispatch(packet: Packet): void {
    if (!this.started) {
      this.held ??= [];
      this.held.push(packet);
      return;
    }
    switch (packet.cmd) {
      case 'publish':
        this.handlers.onPublish(packet);
        return;
      case 'puback':
      case 'pubrec':
      case 'pubcomp':
        this.handlers.onAck(packet);
        return;
      case 'pubrel':
        this.handlers.onPubrel(packet.messageId ?? 0);
        return;
      case 'suback':
      case 'unsuback': {
        const id = packet.messageId ?? 0;
        const w = this.waiters?.get(id);
        if (w) {
          this.waiters?.delete(id);
          w(packet);
        }
        return;
      }
      case 'pingresp':
        this.pingOutstanding = 0;
        return;
      case 'disconnect':
        this.handlers.onDisconnect(packet);
        return;
      default:
        // CONNACK twice, AUTH, or a client-only packet: a protocol violation by the broker.
        this.destroy();
        // The session names it north_protocol_error: the reason carries no side prefix here.
        this.handlers.onClose('protocol_error');
    }
  }

  private closed(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.rejectWaiters();
    this.handlers.onClose(reason);
  }
}

const meterWritten = new WeakMap<NorthMeter, (cmd: string, bytes: number) => void>();

/** The channel's `onWritten` for a meter, made once per meter. */
function writtenBy(meter: NorthMeter): (cmd: string, bytes: number) => void {
  let f = meterWritten.get(meter);
  if (!f) {
    f = (cmd, bytes) => meter('north_out', cmd, bytes);
    meterWritten.set(meter, f);
  }
  return f;
}
