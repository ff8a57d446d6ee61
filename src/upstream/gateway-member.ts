/**
 * One device's view of a gateway link's shared north connection (src/upstream/gateway.ts):
 * what its session sends, subscribes and waits for goes through the link; the device's own
 * subscriptions are kept here to be made again after a reconnect.
 */
import type { IPublishPacket, ISubscription, Packet, QoS } from 'mqtt-packet';
import type { IdSpace } from '../codec/packet-ids.js';
import type { NorthPlan } from '../core/contract.js';
import { topicMatches } from './filter-index.js';
import type { NorthClient } from './north.js';
import type { NorthPort } from './port.js';

export type GatewayPlan = Extract<NorthPlan, { mode: 'gateway' }>;

/** QoS 0 uplinks of one device kept while its link reconnects (beyond: dropped, as QoS 0 may be). */
const HELD_UPLINKS = 100;

export interface MemberEvents {
  onPublish(packet: IPublishPacket): void;
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void;
  onGatewayError(error: { type: string; description?: string }): void;
  onDrain(): void;
  /** The SUBACK of the device's subscriptions made with its attach (`GatewayPlan.subscriptions`). */
  onAutoSubscribed?(granted: number[]): void;
  /** Another session attached the same device: this member is out of the link, its session should end. */
  onEvicted?(): void;
  /** The link could not attach the device again after a reconnect: its session should end. */
  onClose?(reason: string): void;
}

/** An uplink sent and not yet acknowledged, kept for a resend after a reconnect. */
export interface Pending {
  packet: IPublishPacket;
  member: GatewayMember;
}

/** What a member needs of its link. */
export interface MemberLink {
  readonly ids: IdSpace;
  /** Connected and every device attached: traffic may flow. */
  readonly ready: boolean;
  readonly client$: NorthClient | undefined;
  /** North packet id → the member whose uplink it is, and the packet for a resend. */
  readonly pending: Map<number, Pending>;
  /** Neither the member nor the link is at its in-flight limit. */
  accepts(member: GatewayMember): boolean;
  /** Tell the member (onDrain) when the link can take more. */
  wait(member: GatewayMember): void;
  /** The member's filters changed. */
  refilter(member: GatewayMember): void;
  /** Keepalive of the shared connection, from the sessions' sweep. */
  tick(now: number): void;
  detach(member: GatewayMember): void;
}

/** One device's view of the shared connection. */
export class GatewayMember implements NorthPort {
  /** The device's own subscriptions (made again after a reconnect): one entry per filter. */
  private extras: Array<{ topic: string; qos: QoS }> = [];
  readonly ids: IdSpace;
  /** The connection is the link's: it is never paused for one device (see NorthPort). */
  readonly shared = true;
  /** Its uplinks in the link's `pending`: sent, not yet acknowledged. */
  private unacked = 0;
  private evicted = false;
  /** The session is online (start()): downlinks go to it as they come. */
  private started = false;
  /** Downlinks that came before start(): the session would drop them. */
  private held?: IPublishPacket[];
  /**
   * QoS 1 downlinks given to the device (or held for it) that it has not acknowledged yet:
   * north packet id → the connection they came on.
   */
  private downlinks?: Map<number, NorthClient>;
  /** QoS 0 uplinks sent while the link was not ready (reconnecting): sent once it is. */
  private upHeld?: IPublishPacket[];

  constructor(
    private readonly link: MemberLink,
    readonly plan: GatewayPlan,
    readonly events: MemberEvents,
  ) {
    this.ids = link.ids;
  }

  get deviceId(): string {
    return this.plan.deviceId;
  }

  /**
   * Blocked (the link's writes, or the device's or the link's uplinks in flight): the
   * session stops reading its device, and this member is told (onDrain) when it may go on.
   */
  get blocked(): boolean {
    const c = this.link.ready ? this.link.client$ : undefined;
    if (c && !c.blocked && this.link.accepts(this)) return false;
    this.link.wait(this);
    return true;
  }

  get inflight(): number {
    return this.unacked;
  }

  /** The link took one of its uplinks out of `pending` on its acknowledgement. */
  acked(): void {
    this.unacked--;
  }

  /** Every filter the device has on the link: its automatic ones and its own. */
  filters(): string[] {
    return [...this.plan.subscriptions.map((s) => s.topic), ...this.extras.map((s) => s.topic)];
  }

  matches(topic: string): boolean {
    for (const s of this.plan.subscriptions) if (topicMatches(s.topic, topic)) return true;
    for (const s of this.extras) if (topicMatches(s.topic, topic)) return true;
    return false;
  }

  /** A downlink for this device, from the link's connection `from`. */
  deliver(packet: IPublishPacket, from: NorthClient): void {
    if (packet.qos === 1 && packet.messageId) {
      this.downlinks ??= new Map();
      this.downlinks.set(packet.messageId, from);
    }
    if (this.started) this.events.onPublish(packet);
    else {
      this.held ??= [];
      this.held.push(packet);
    }
  }

  /** The device left: the QoS 1 downlinks it did not acknowledge, by the connection they came on. */
  takeUnanswered(): Map<number, NorthClient> | undefined {
    const d = this.downlinks;
    this.downlinks = undefined;
    this.held = undefined;
    this.upHeld = undefined;
    return d;
  }

  /** The link is restored on `c`: the QoS 0 uplinks that waited for it go now. */
  sendHeld(c: NorthClient): void {
    const held = this.upHeld;
    this.upHeld = undefined;
    if (held && !this.evicted) for (const p of held) c.send(p);
  }

  send(packet: Packet): boolean {
    if (this.evicted) return false;
    if (packet.cmd === 'publish') {
      // QoS 2 is never sent north: the platform closes the connection on it.
      if (packet.qos === 2) packet.qos = 1;
      // Kept until acknowledged: if the link is down or being restored, restore() sends it.
      if (packet.qos === 1 && packet.messageId) {
        if (!this.link.pending.has(packet.messageId)) this.unacked++;
        this.link.pending.set(packet.messageId, { packet, member: this });
      }
      const c = this.link.ready ? this.link.client$ : undefined;
      if (c) return c.send(packet);
      // QoS 0 too waits for the link (the session stops reading after this one): written to
      // no connection, it was lost at every reconnect and JWT renewal.
      if (packet.qos === 0 && (this.upHeld?.length ?? 0) < HELD_UPLINKS) {
        this.upHeld ??= [];
        this.upHeld.push(packet);
      }
      return false;
    }
    // Acknowledgements of downlinks need no attach: they go out whenever the link is
    // connected, also while it attaches its devices again.
    const c = this.link.client$;
    if (packet.cmd === 'puback' && packet.messageId) {
      const from = this.downlinks?.get(packet.messageId);
      this.downlinks?.delete(packet.messageId);
      // Its downlink came on a connection since lost: on this one the id may name another
      // message, which the PUBACK would acknowledge.
      if (from && from !== c) return false;
    }
    return c ? c.send(packet) : false;
  }

  async subscribe(subs: ISubscription[]): Promise<number[]> {
    const c = this.link.client$;
    if (!c) return subs.map(() => 0x80);
    const wanted = subs.map((s) => ({ topic: s.topic, qos: Math.min(s.qos, 1) as QoS }));
    // Kept from now (a reconnect while it is under way makes it again); a filter subscribed
    // again replaces its entry, as it replaces the subscription (MQTT 3.1.1 3.8.4).
    this.forget(wanted.map((s) => s.topic));
    this.extras.push(...wanted);
    this.link.refilter(this);
    let granted: number[];
    try {
      granted = await c.subscribe(wanted.map((s) => ({ ...s })));
    } catch (err) {
      // The connection went first: the device is told its filters failed, so they are not
      // made again on the next connection either.
      this.extras = this.extras.filter((s) => !wanted.includes(s));
      this.link.refilter(this);
      throw err;
    }
    const refused = new Set(wanted.filter((_, i) => (granted[i] ?? 0x80) >= 0x80));
    if (refused.size) {
      this.extras = this.extras.filter((s) => !refused.has(s));
      this.link.refilter(this);
    }
    return granted;
  }

  async unsubscribe(topics: string[]): Promise<number[]> {
    // Forgotten first: with the connection down, they are not made again on the next one.
    this.forget(topics);
    this.link.refilter(this);
    const c = this.link.client$;
    if (!c) return topics.map(() => 0);
    return c.unsubscribe(topics);
  }

  private forget(topics: string[]): void {
    this.extras = this.extras.filter((s) => !topics.includes(s.topic));
  }

  get extraSubscriptions(): ReadonlyArray<{ topic: string; qos: QoS }> {
    return this.extras;
  }

  /** The session is online: the downlinks that came meanwhile go to it (the connection is the link's). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const held = this.held;
    this.held = undefined;
    if (held) for (const p of held) this.events.onPublish(p);
  }

  pause(): void {
    /* a shared connection is never paused for one device */
  }

  resume(): void {}

  /** The shared connection's keepalive is the link's (one check per sweep); the session is kept. */
  tick(now: number): boolean {
    this.link.tick(now);
    return true;
  }

  end(): void {
    this.link.detach(this);
  }

  destroy(): void {
    this.link.detach(this);
  }

  /** Another session attached the same device: this one stops receiving and sending, its session is told. */
  evict(): void {
    if (this.evicted) return;
    this.evicted = true;
    this.events.onEvicted?.();
  }

  /** Out of the link for `reason` (see GatewayLink.expel): its session ends with it. */
  expel(reason: string): void {
    if (this.evicted) return;
    this.evicted = true;
    this.events.onClose?.(reason);
  }
}
