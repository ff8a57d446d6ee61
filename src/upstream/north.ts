/**
 * A raw MQTT client for the north side, on mqtt-packet: it sends the CONNECT the route made,
 * hands every other packet to its owner untouched, keeps the connection alive on its own
 * (PINGREQ when idle), and allocates the north packet identifiers. It never acknowledges
 * anything by itself: acknowledgements are the session's decision.
 */
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
import { PacketChannel } from '../codec/channel.js';
import { IdAllocator } from '../session/relay.js';
import type { CompiledTransport } from './transport.js';

export interface NorthHandlers {
  onPublish(packet: IPublishPacket): void;
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void;
  onPubrel(messageId: number): void;
  onDisconnect(packet: IDisconnectPacket): void;
  /** The connection ended after it was established. */
  onClose(reason: string): void;
  onDrain(): void;
  onPacketMeter?(direction: 'north_in' | 'north_out', cmd: string, bytes: number): void;
}

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

export class NorthClient {
  private readonly waiters = new Map<number, Waiter>();
  private lastWriteAt = Date.now();
  private pingOutstanding = 0;
  private ended = false;
  /** Packets that arrived with or right after the CONNACK, held until the owner is ready. */
  private held: Packet[] | null = [];

  private constructor(
    private readonly channel: PacketChannel,
    private readonly handlers: NorthHandlers,
    readonly keepalive: number,
    readonly protocolVersion: 3 | 4 | 5,
    /** Packet identifiers; shared across reconnects when a gateway link owns them. */
    readonly ids: IdAllocator,
  ) {}

  /** Opens the stream, sends CONNECT and resolves with the CONNACK; rejects with NorthConnectError. */
  static async connect(
    transport: CompiledTransport,
    connect: IConnectPacket,
    opts: { timeoutMs: number; maxPacketBytes: number },
    handlers: NorthHandlers,
    ids: IdAllocator = new IdAllocator(),
  ): Promise<{ client: NorthClient; connack: IConnackPacket }> {
    const deadline = Date.now() + opts.timeoutMs;
    let stream: Awaited<ReturnType<CompiledTransport['open']>>;
    try {
      stream = await transport.open(opts.timeoutMs);
    } catch (err) {
      const msg = (err as Error).message;
      throw new NorthConnectError(msg.includes('timed out') ? 'timeout' : 'unreachable', msg);
    }
    const version = connect.protocolVersion ?? 4;
    return new Promise((resolve, reject) => {
      let client: NorthClient | undefined;
      let settled = false;
      const timer = setTimeout(
        () => fail(new NorthConnectError('timeout', 'north broker sent no CONNACK in time')),
        Math.max(1, deadline - Date.now()),
      );
      const fail = (err: NorthConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        channel.destroy();
        reject(err);
      };
      const channel = new PacketChannel(
        stream,
        {
          onPacket(packet, bytes) {
            handlers.onPacketMeter?.('north_in', packet.cmd, bytes);
            if (!settled) {
              if (packet.cmd !== 'connack') {
                fail(new NorthConnectError('refused', `north broker answered CONNECT with ${packet.cmd}`));
                return;
              }
              const rc = packet.reasonCode ?? packet.returnCode ?? 0;
              if (rc !== 0) {
                fail(
                  new NorthConnectError(
                    'refused',
                    `north broker refused the connection (code ${rc})`,
                    packet,
                  ),
                );
                return;
              }
              settled = true;
              clearTimeout(timer);
              client = new NorthClient(channel, handlers, connect.keepalive ?? 0, version, ids);
              resolve({ client, connack: packet });
              return;
            }
            client?.dispatch(packet);
          },
          onClose(reason) {
            if (!settled)
              fail(new NorthConnectError('closed', `north connection closed before CONNACK (${reason})`));
            else client?.closed(reason);
          },
          onDrain() {
            client?.handlers.onDrain();
          },
        },
        {
          maxPacketBytes: opts.maxPacketBytes,
          protocolVersion: version,
          onWritten: (cmd, bytes) => handlers.onPacketMeter?.('north_out', cmd, bytes),
        },
      );
      channel.setProtocolVersion(version);
      channel.write(connect);
    });
  }

  get blocked(): boolean {
    return this.channel.blocked;
  }

  send(packet: Packet): boolean {
    this.lastWriteAt = Date.now();
    return this.channel.write(packet);
  }

  subscribe(subscriptions: ISubscription[], properties?: ISubscribePacket['properties']): Promise<number[]> {
    const messageId = this.ids.alloc();
    const packet: ISubscribePacket = { cmd: 'subscribe', messageId, subscriptions };
    if (properties && this.protocolVersion === 5) packet.properties = properties;
    return this.request(packet, messageId).then((p) => (p.cmd === 'suback' ? (p.granted as number[]) : []));
  }

  unsubscribe(topics: string[], properties?: IUnsubscribePacket['properties']): Promise<number[]> {
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
    if (disconnect) this.channel.write(disconnect);
    this.channel.end();
    this.rejectWaiters();
  }

  /** Abrupt end: the broker sees a lost connection (and publishes the will). */
  destroy(): void {
    if (this.ended) return;
    this.ended = true;
    this.channel.destroy();
    this.rejectWaiters();
  }

  private request(packet: Packet, messageId: number): Promise<Packet> {
    return new Promise((resolve, reject) => {
      if (this.ended) {
        reject(new Error('north connection closed'));
        return;
      }
      this.waiters.set(messageId, (p) => {
        this.ids.free(messageId);
        if (p.cmd === 'disconnect') reject(new Error('north connection closed'));
        else resolve(p);
      });
      this.send(packet);
    });
  }

  private rejectWaiters(): void {
    for (const w of this.waiters.values()) w({ cmd: 'disconnect' });
    this.waiters.clear();
  }

  /** The owner is ready for packets: deliver those held since the CONNACK, then flow. */
  start(): void {
    const held = this.held;
    this.held = null;
    if (held) for (const p of held) if (!this.ended) this.dispatch(p);
  }

  private dispatch(packet: Packet): void {
    if (this.held) {
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
        const w = this.waiters.get(id);
        if (w) {
          this.waiters.delete(id);
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
        this.handlers.onClose('north_protocol_error');
    }
  }

  private closed(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.rejectWaiters();
    this.handlers.onClose(reason);
  }
}
