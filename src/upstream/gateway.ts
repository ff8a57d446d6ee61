/**
 * Gateway multiplexing: every south device of one gateway identity shares one north
 * connection. A device is attached (QoS 1 attach, its traffic flows after the PUBACK) when it
 * connects and detached when it leaves; downlinks are routed to the device whose filters
 * match; errors on the gateway's errors topic go to the device they name.
 *
 * The link reconnects with exponential backoff (1 s doubling to 32 s, with jitter) and renews
 * its credentials (a fresh CONNECT, e.g. a new JWT) before they expire. Devices stay
 * connected through both: their uplinks wait, unacknowledged ones are resent, every device is
 * attached again and every subscription made again.
 */
import type { IPublishPacket, ISubscription, Packet, QoS } from 'mqtt-packet';
import type { NorthPlan, PublishOut } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { topicShape } from '../session/accounting.js';
import { IdAllocator, type IdSpace } from '../session/relay.js';
import { FilterIndex } from './filter-index.js';
import { NorthClient } from './north.js';
import type { NorthPort } from './port.js';
import type { CompiledTransport } from './transport.js';

export type GatewayPlan = Extract<NorthPlan, { mode: 'gateway' }>;

export interface MemberEvents {
  onPublish(packet: IPublishPacket): void;
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void;
  onGatewayError(error: { type: string; description?: string }): void;
  onDrain(): void;
  /** The SUBACK of the device's subscriptions made with its attach (`GatewayPlan.subscriptions`). */
  onAutoSubscribed?(granted: number[]): void;
}

export interface GatewayEnv {
  transport(url?: string): CompiledTransport;
  timeoutMs: number;
  maxPacketBytes: number;
  log: Logger;
  onError?(type: string): void;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 32000;
/** A connection that lived this long resets the backoff. */
const STABLE_MS = 60_000;

export class GatewayHub {
  private readonly links = new Map<string, GatewayLink>();
  constructor(private readonly env: GatewayEnv) {}

  /** Attaches a device; resolves with its port once the platform acknowledged the attach. */
  async attach(plan: GatewayPlan, events: MemberEvents): Promise<GatewayMember> {
    let link = this.links.get(plan.key);
    if (!link) {
      link = new GatewayLink(plan, this.env, () => this.links.delete(plan.key));
      this.links.set(plan.key, link);
    }
    return link.attach(plan, events);
  }

  close(): void {
    for (const l of this.links.values()) l.shutdown();
    this.links.clear();
  }
}

interface Pending {
  packet: IPublishPacket;
  member: GatewayMember;
}

class GatewayLink {
  private client?: NorthClient;
  private connecting?: Promise<NorthClient>;
  private readonly members = new Map<string, GatewayMember>();
  /**
   * Members that found the link blocked (and stopped reading their device): told when it
   * drains. Not every member: with thousands attached, most are idle.
   */
  private readonly waiting = new Set<GatewayMember>();
  /** The members by their filters, for routing downlinks. */
  private readonly routes = new FilterIndex<GatewayMember>();
  /** North packet id → the member whose uplink it is, and the packet for a resend. */
  readonly pending = new Map<number, Pending>();
  private readonly waiters = new Map<number, (rc: number) => void>();
  private renewTimer?: NodeJS.Timeout;
  private attempt = 0;
  /** Reconnecting or re-attaching: devices hold their traffic (kept in `pending`). */
  private restoring = false;
  private connectedAt = 0;
  private closed = false;
  private readonly gatewaySubs: ISubscription[];
  /** One identifier space for every connection of this link, so resent uplinks keep their ids. */
  readonly ids = new IdAllocator();

  constructor(
    private plan: GatewayPlan,
    private readonly env: GatewayEnv,
    private readonly onEmpty: () => void,
  ) {
    this.gatewaySubs = plan.gatewaySubscriptions.map((s) => ({ topic: s.topic, qos: s.qos }));
  }

  async attach(plan: GatewayPlan, events: MemberEvents): Promise<GatewayMember> {
    this.plan = plan;
    const client = await this.ensure();
    const member = new GatewayMember(this, plan, events);
    const previous = this.members.get(plan.deviceId);
    if (previous) {
      previous.evict();
      this.routes.delete(previous);
      this.waiting.delete(previous);
    }
    this.members.set(plan.deviceId, member);
    this.routes.set(member, member.filters());
    try {
      const rc = await this.controlPublish(client, plan.attach);
      if (rc >= 0x80) throw new Error(`attach refused (code ${rc})`);
      if (plan.subscriptions.length)
        events.onAutoSubscribed?.(await client.subscribe(plan.subscriptions.map((s) => ({ ...s }))));
    } catch (err) {
      this.members.delete(plan.deviceId);
      this.routes.delete(member);
      this.waiting.delete(member);
      this.maybeEmpty();
      throw err;
    }
    return member;
  }

  get client$(): NorthClient | undefined {
    return this.client;
  }

  /** Connected and every device attached: traffic may flow. */
  get ready(): boolean {
    return this.client !== undefined && !this.restoring;
  }

  /** QoS 1 control message (attach/detach); resolves with the PUBACK reason code. */
  controlPublish(client: NorthClient, out: PublishOut): Promise<number> {
    const id = this.ids.alloc();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        this.ids.free(id);
        reject(new Error('no PUBACK for the gateway control message'));
      }, this.env.timeoutMs);
      this.waiters.set(id, (rc) => {
        clearTimeout(timer);
        this.ids.free(id);
        resolve(rc);
      });
      client.send({
        cmd: 'publish',
        topic: out.topic,
        payload: out.payload,
        qos: 1,
        retain: false,
        dup: false,
        messageId: id,
      });
    });
  }

  /** Remembers a member to tell when the link can take more. */
  wait(member: GatewayMember): void {
    this.waiting.add(member);
  }

  private wakeWaiting(): void {
    if (this.waiting.size === 0) return;
    const members = [...this.waiting];
    this.waiting.clear();
    for (const m of members) if (this.members.get(m.deviceId) === m) m.events.onDrain();
  }

  /** The member's filters changed: route by the new ones (a member no longer attached stays out). */
  refilter(member: GatewayMember): void {
    if (this.routes.has(member)) this.routes.set(member, member.filters());
  }

  detach(member: GatewayMember): void {
    if (this.members.get(member.deviceId) !== member) return;
    this.members.delete(member.deviceId);
    this.routes.delete(member);
    this.waiting.delete(member);
    for (const [id, p] of this.pending) {
      if (p.member === member) {
        this.pending.delete(id);
        this.ids.free(id);
      }
    }
    const client = this.client;
    if (client) this.controlPublish(client, member.plan.detach).catch(() => {});
    this.maybeEmpty();
  }

  private maybeEmpty(): void {
    if (this.members.size > 0 || this.closed) return;
    // Keep the connection a moment: devices often reconnect right away.
    setTimeout(() => {
      if (this.members.size === 0 && !this.closed) this.shutdown();
    }, 5000).unref();
  }

  shutdown(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    this.client?.end({ cmd: 'disconnect' });
    this.client = undefined;
    this.onEmpty();
  }

  private ensure(): Promise<NorthClient> {
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.connect().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connect(): Promise<NorthClient> {
    const { client } = await NorthClient.connect(
      this.env.transport(this.plan.url),
      this.plan.connect(),
      { timeoutMs: this.env.timeoutMs, maxPacketBytes: this.env.maxPacketBytes },
      {
        onPublish: (p) => this.route(p),
        onAck: (p) => this.onAck(p),
        onPubrel: (id) => client.send({ cmd: 'pubcomp', messageId: id, reasonCode: 0 }),
        onDisconnect: () => this.lost('north_disconnect'),
        onClose: (reason) => this.lost(reason),
        onDrain: () => this.wakeWaiting(),
      },
      this.ids,
    );
    this.client = client;
    this.connectedAt = Date.now();
    client.start();
    if (this.gatewaySubs.length) await client.subscribe(this.gatewaySubs);
    if (this.plan.renewAfterMs && this.plan.renewAfterMs > 0) {
      clearTimeout(this.renewTimer);
      this.renewTimer = setTimeout(() => this.renew(), this.plan.renewAfterMs);
      this.renewTimer.unref();
    }
    return client;
  }

  /** Credentials about to expire: reconnect with fresh ones, keeping every device. */
  private renew(): void {
    if (this.closed || !this.client) return;
    this.env.log.info('gateway credentials renewal: reconnecting');
    const old = this.client;
    this.client = undefined;
    old.end({ cmd: 'disconnect' });
    void this.restore(true);
  }

  private lost(reason: string): void {
    if (this.closed) return;
    this.client = undefined;
    this.env.log.warn({ reason }, 'gateway north connection lost; reconnecting');
    void this.restore();
  }

  /** Reconnects with backoff, re-attaches every device, re-subscribes, resends unacknowledged uplinks. */
  private async restore(planned = false): Promise<void> {
    // A connection that died young (e.g. the platform closes on something we resend) must not
    // be retried in a tight loop: the backoff carries on until one has lived a minute.
    if (planned || Date.now() - this.connectedAt > STABLE_MS) this.attempt = 0;
    else await this.backoff();
    this.restoring = true;
    while (!this.closed) {
      try {
        const client = await this.ensure();
        // Every device attached again before any of its traffic (the platform refuses traffic
        // for unattached devices), then its subscriptions, then what was not acknowledged.
        const members = [...this.members.values()];
        await Promise.all(
          members.map(async (m) => {
            const rc = await this.controlPublish(client, m.plan.attach);
            if (rc >= 0x80) throw new Error(`re-attach refused (code ${rc})`);
            const auto = m.plan.subscriptions.length;
            const extras = [...m.extraSubscriptions];
            if (!auto && !extras.length) return;
            const granted = await client.subscribe(
              [...m.plan.subscriptions, ...extras].map((s) => ({ ...s })),
            );
            // Refusals are logged as on the first connection: the automatic ones by the
            // device's session, the device's own ones here (by shape: filters may hold secrets).
            if (auto) m.events.onAutoSubscribed?.(granted.slice(0, auto));
            const refused = extras.filter((_, i) => (granted[auto + i] ?? 0x80) >= 0x80);
            if (refused.length)
              this.env.log.warn(
                { refused: refused.map((s) => topicShape(s.topic)) },
                'north broker refused a re-subscription after the gateway reconnect: no downlinks on it',
              );
          }),
        );
        for (const p of this.pending.values()) client.send({ ...p.packet, dup: true });
        this.restoring = false;
        this.waiting.clear();
        for (const m of this.members.values()) m.events.onDrain();
        return;
      } catch (err) {
        this.client?.destroy();
        this.client = undefined;
        this.env.log.warn({ err: (err as Error).message }, 'gateway reconnect failed');
        await this.backoff();
      }
    }
  }

  /** Waits 1 s doubling to 32 s, with jitter (half to all of the step). */
  private backoff(): Promise<void> {
    const step = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++);
    const wait = step / 2 + Math.random() * (step / 2);
    return new Promise((r) => setTimeout(r, wait).unref());
  }

  private onAck(p: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void {
    const id = p.messageId ?? 0;
    const w = this.waiters.get(id);
    if (w) {
      this.waiters.delete(id);
      w(p.reasonCode ?? 0);
      return;
    }
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    pending.member.events.onAck(p);
  }

  private route(p: IPublishPacket): void {
    if (this.gatewaySubs.some((s) => topicMatches(s.topic, p.topic))) {
      this.routeError(p);
    } else {
      const m = this.routes.find(p.topic, (x) => x.matches(p.topic));
      if (m) {
        m.events.onPublish(p);
        return;
      }
    }
    // Not for any attached device (or an error report): consumed here.
    if (p.qos === 1) this.client?.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 });
  }

  private routeError(p: IPublishPacket): void {
    let body: { error_type?: string; device_id?: string; description?: string };
    try {
      body = JSON.parse(p.payload.toString());
    } catch {
      this.env.log.warn('unparseable gateway error report');
      return;
    }
    const type = typeof body.error_type === 'string' ? body.error_type : 'UNKNOWN';
    this.env.onError?.(type);
    const member = body.device_id ? this.members.get(body.device_id) : undefined;
    this.env.log.warn(
      { errorType: type, attached: Boolean(member) },
      'gateway error reported by the platform',
    );
    member?.events.onGatewayError({ type, description: body.description });
  }
}

/** One device's view of the shared connection. */
export class GatewayMember implements NorthPort {
  /** The device's own subscriptions (made again after a reconnect): one entry per filter. */
  private extras: Array<{ topic: string; qos: QoS }> = [];
  readonly ids: IdSpace;
  private evicted = false;

  constructor(
    private readonly link: GatewayLink,
    readonly plan: GatewayPlan,
    readonly events: MemberEvents,
  ) {
    this.ids = link.ids;
  }

  get deviceId(): string {
    return this.plan.deviceId;
  }

  /** Blocked: the session stops reading its device, and this member is told (onDrain) when the link drains. */
  get blocked(): boolean {
    const c = this.link.ready ? this.link.client$ : undefined;
    if (c && !c.blocked) return false;
    this.link.wait(this);
    return true;
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

  send(packet: Packet): boolean {
    if (this.evicted) return false;
    if (packet.cmd === 'publish') {
      // QoS 2 is never sent north: the platform closes the connection on it.
      if (packet.qos === 2) packet.qos = 1;
      // Kept until acknowledged: if the link is down or being restored, restore() sends it.
      if (packet.qos === 1 && packet.messageId)
        this.link.pending.set(packet.messageId, { packet, member: this });
    }
    const c = this.link.ready ? this.link.client$ : undefined;
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
    const granted = await c.subscribe(wanted.map((s) => ({ ...s })));
    const refused = new Set(wanted.filter((_, i) => (granted[i] ?? 0x80) >= 0x80));
    if (refused.size) {
      this.extras = this.extras.filter((s) => !refused.has(s));
      this.link.refilter(this);
    }
    return granted;
  }

  async unsubscribe(topics: string[]): Promise<number[]> {
    const c = this.link.client$;
    if (!c) return topics.map(() => 0x11);
    this.forget(topics);
    this.link.refilter(this);
    return c.unsubscribe(topics);
  }

  private forget(topics: string[]): void {
    this.extras = this.extras.filter((s) => !topics.includes(s.topic));
  }

  get extraSubscriptions(): ReadonlyArray<{ topic: string; qos: QoS }> {
    return this.extras;
  }

  start(): void {
    /* the shared connection is started by its link */
  }

  pause(): void {
    /* a shared connection is never paused for one device */
  }

  resume(): void {}

  tick(): boolean {
    return true;
  }

  end(): void {
    this.link.detach(this);
  }

  destroy(): void {
    this.link.detach(this);
  }

  /** Another session attached the same device: this one stops receiving. */
  evict(): void {
    this.evicted = true;
  }
}

export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}
