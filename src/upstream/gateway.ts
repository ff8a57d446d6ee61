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
import type { IPublishPacket, ISubscription, Packet } from 'mqtt-packet';
import type { IdSpace } from '../codec/packet-ids.js';
import type { PublishOut } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { RepeatBudget } from '../log/repeats.js';
import { FilterIndex, topicMatches } from './filter-index.js';
import { LinkIds } from './gateway-ids.js';
import {
  GatewayMember,
  type GatewayPlan,
  type MemberEvents,
  type MemberLink,
  type Pending,
} from './gateway-member.js';
import { attachJwtExpired, attachOn, parseErrorReport } from './gateway-restore.js';
import { NorthClient } from './north.js';
import type { CompiledTransport } from './transport.js';

export interface GatewayEnv {
  transport(url?: string): CompiledTransport;
  timeoutMs: number;
  maxPacketBytes: number;
  log: Logger;
  /**
   * The budget of lines repeated per device or per platform report (see log/repeats.ts): a
   * fleet of devices or an error report per uplink must not flood the log. The hub makes its
   * own when none is given.
   */
  repeats?: RepeatBudget;
  onError?(type: string): void;
  /**
   * Uplinks sent and not yet acknowledged: at most this many per device (default 1,000)
   * and per link (default 60,000, under the 65,535 packet ids of one connection, leaving
   * room for attaches and detaches). A device at its limit, or every device when the link
   * is at its own, stops being read until acknowledgements come: one device that floods
   * cannot take the ids of the others.
   */
  maxInflightPerDevice?: number;
  maxInflightPerLink?: number;
}

/** An attach or detach awaiting its PUBACK on `client`; `done` gets its code, or an error when it will not come. */
interface ControlWaiter {
  client: NorthClient;
  done(rc: number | Error): void;
}

const INFLIGHT_PER_DEVICE = 1000;
const INFLIGHT_PER_LINK = 60_000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 32000;
/** A connection that lived this long resets the backoff. */
const STABLE_MS = 60_000;
const REATTACH_FAILED = 'gateway device not attached again after the reconnect; its session is closed';
const ERROR_REPORTED = 'gateway error reported by the platform';

export class GatewayHub {
  private readonly links = new Map<string, GatewayLink>();
  private readonly env: GatewayEnv & { repeats: RepeatBudget };
  /** The budget the hub made itself (none was given): it closes it. */
  private readonly ownRepeats: RepeatBudget | undefined;
  constructor(env: GatewayEnv) {
    this.ownRepeats = env.repeats ? undefined : new RepeatBudget(env.log);
    this.env = { ...env, repeats: env.repeats ?? (this.ownRepeats as RepeatBudget) };
  }

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
    this.ownRepeats?.close();
  }
}

class GatewayLink implements MemberLink {
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
  /** Attaches and detaches awaiting their PUBACK, by packet id, with the connection they went on. */
  private readonly waiters = new Map<number, ControlWaiter>();
  private renewTimer?: NodeJS.Timeout;
  private attempt = 0;
  /**
   * Reconnecting or re-attaching: devices hold their traffic (kept in `pending`). One restore
   * runs at a time: a connection lost meanwhile makes its current attempt fail and retry.
   */
  private restoring = false;
  private connectedAt = 0;
  /** The sweep's time of the last keepalive check (see tick). */
  private tickedAt = 0;
  private closed = false;
  private readonly gatewaySubs: ISubscription[];
  private readonly maxPerDevice: number;
  private readonly maxPerLink: number;
  /** One identifier space for every connection of this link, so resent uplinks keep their ids. */
  private readonly book = new LinkIds();

  constructor(
    private plan: GatewayPlan,
    private readonly env: GatewayEnv & { repeats: RepeatBudget },
    private readonly onEmpty: () => void,
  ) {
    this.gatewaySubs = plan.gatewaySubscriptions.map((s) => ({ topic: s.topic, qos: s.qos }));
    this.maxPerDevice = env.maxInflightPerDevice ?? INFLIGHT_PER_DEVICE;
    this.maxPerLink = env.maxInflightPerLink ?? INFLIGHT_PER_LINK;
  }

  async attach(plan: GatewayPlan, events: MemberEvents): Promise<GatewayMember> {
    this.plan = plan;
    const client = await this.ensure();
    const member = new GatewayMember(this, plan, events);
    const previous = this.members.get(plan.deviceId);
    this.members.set(plan.deviceId, member);
    this.routes.set(member, member.filters());
    if (previous) {
      this.routes.delete(previous);
      this.waiting.delete(previous);
      // Its session ends (it is no longer the link's member: no detach is sent for it).
      previous.evict();
    }
    try {
      try {
        await attachOn(client, member, this.control, this.env.log);
      } catch (err) {
        // Its connection went before the answer (the platform cut it, or a JWT renewal): the
        // device is attached on the next one (once), not refused for a loss of the link's.
        if (this.closed || client === this.client || this.members.get(plan.deviceId) !== member) throw err;
        await attachOn(await this.ensure(), member, this.control, this.env.log);
      }
    } catch (err) {
      // (Unless a newer session of the device took its place meanwhile.)
      if (this.members.get(plan.deviceId) === member) this.members.delete(plan.deviceId);
      this.routes.delete(member);
      this.waiting.delete(member);
      this.maybeEmpty();
      throw err;
    }
    return member;
  }

  /** The ids the devices' relays use (see LinkIds: an id still due an answer is not freed by them). */
  get ids(): IdSpace {
    return this.book.forMembers;
  }

  /** North packet id → the member whose uplink it is, and the packet for a resend. */
  get pending(): Map<number, Pending> {
    return this.book.pending;
  }

  get client$(): NorthClient | undefined {
    return this.client;
  }

  /** Connected and every device attached: traffic may flow. */
  get ready(): boolean {
    return this.client !== undefined && !this.restoring;
  }

  /** controlPublish as a function of its own, for attachOn. */
  private readonly control = (client: NorthClient, out: PublishOut): Promise<number> =>
    this.controlPublish(client, out);

  /** QoS 1 control message (attach/detach); resolves with the PUBACK reason code. */
  controlPublish(client: NorthClient, out: PublishOut): Promise<number> {
    const id = this.book.all.alloc();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        // Its PUBACK may still come: the id is kept until then (or until the connection goes).
        this.book.orphan(id);
        reject(new Error('no PUBACK for the gateway control message'));
      }, this.env.timeoutMs);
      this.waiters.set(id, {
        client,
        done: (rc) => {
          clearTimeout(timer);
          this.book.all.free(id);
          if (typeof rc === 'number') resolve(rc);
          else reject(rc);
        },
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

  /** The member may send another uplink: neither it nor the link is at its in-flight limit. */
  accepts(member: GatewayMember): boolean {
    return member.inflight < this.maxPerDevice && this.book.inFlight < this.maxPerLink;
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

  /**
   * The connection's keepalive (PINGREQ when idle, lost when the platform went silent), from
   * the sessions' sweep: every device's session ticks, the connection once per sweep.
   */
  tick(now: number): void {
    if (now === this.tickedAt) return;
    this.tickedAt = now;
    const c = this.client;
    if (c && !c.tick(now)) this.lost(c, 'keepalive_timeout');
  }

  /** The member's filters changed: route by the new ones (a member no longer attached stays out). */
  refilter(member: GatewayMember): void {
    if (this.routes.has(member)) this.routes.set(member, member.filters());
  }

  detach(member: GatewayMember): void {
    // Its uplinks still unanswered north keep their ids until the answer comes (LinkIds).
    this.book.orphanUplinks(member);
    // Its downlinks are consumed (as those for no attached device are): unanswered, they
    // would stay in the platform's window for the gateway connection.
    const unanswered = member.takeUnanswered();
    if (unanswered)
      for (const [id, from] of unanswered)
        if (from === this.client) from.send({ cmd: 'puback', messageId: id, reasonCode: 0 });
    if (this.members.get(member.deviceId) !== member) return;
    this.members.delete(member.deviceId);
    this.routes.delete(member);
    this.waiting.delete(member);
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
    if (this.client) this.drop(this.client, 'end');
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
    // The handlers name their connection: a late event of one already replaced is ignored,
    // and one that ends before this function resumes is not taken for a live connection.
    const self: { client?: NorthClient; gone?: string } = {};
    const ended = (reason: string): void => {
      if (self.client) this.lost(self.client, reason);
      else self.gone = reason;
    };
    const { client } = await NorthClient.connect(
      this.env.transport(this.plan.url),
      this.plan.connect(),
      { timeoutMs: this.env.timeoutMs, maxPacketBytes: this.env.maxPacketBytes },
      {
        onPublish: (p) => this.route(p),
        onAck: (p) => this.onAck(p),
        onPubrel: (id) => self.client?.send({ cmd: 'pubcomp', messageId: id, reasonCode: 0 }),
        onDisconnect: () => ended('north_disconnect'),
        onClose: ended,
        onDrain: () => this.wakeWaiting(),
      },
      this.book.all,
    );
    self.client = client;
    if (this.closed || self.gone) {
      client.end({ cmd: 'disconnect' });
      throw new Error(this.closed ? 'gateway link closed' : `connection lost at once (${self.gone})`);
    }
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
    this.drop(this.client, 'end');
    this.restart(true);
  }

  /** The connection `client` ended (a DISCONNECT, then its close, report it twice). */
  private lost(client: NorthClient | undefined, reason: string): void {
    if (this.closed || !client || client !== this.client) return;
    this.drop(client, 'destroy');
    this.env.log.warn({ reason }, 'gateway north connection lost; reconnecting');
    this.restart(false);
  }

  /**
   * A connection is done with: ended (DISCONNECT first) or destroyed. Nothing more will be
   * answered on it: its attaches and detaches fail now, its orphaned ids are free.
   */
  private drop(client: NorthClient, how: 'end' | 'destroy'): void {
    if (how === 'end') client.end({ cmd: 'disconnect' });
    else client.destroy();
    if (this.client === client) this.client = undefined;
    for (const [id, w] of this.waiters) {
      if (w.client !== client) continue;
      this.waiters.delete(id);
      w.done(new Error('gateway connection lost'));
    }
    this.book.dropOrphans();
  }

  /** Starts restoring the link, unless a restore runs already (it retries on its own). */
  private restart(planned: boolean): void {
    if (this.restoring || this.closed) return;
    this.restoring = true;
    void this.restore(planned);
  }

  /** Reconnects with backoff, re-attaches every device, re-subscribes, resends unacknowledged uplinks. */
  private async restore(planned: boolean): Promise<void> {
    // A connection that died young (e.g. the platform closes on something we resend) must not
    // be retried in a tight loop: the backoff carries on until one has lived a minute.
    if (planned || Date.now() - this.connectedAt > STABLE_MS) this.attempt = 0;
    else await this.backoff();
    while (!this.closed) {
      let client: NorthClient | undefined;
      try {
        const c = await this.ensure();
        client = c;
        // Every device attached again before any of its traffic (the platform refuses traffic
        // for unattached devices), then its subscriptions, then what was not acknowledged.
        await Promise.all([...this.members.values()].map((m) => this.reattach(c, m)));
        if (client !== this.client) throw new Error('connection lost while re-attaching');
        for (const p of this.pending.values()) client.send({ ...p.packet, dup: true });
        for (const m of this.members.values()) m.sendHeld(client);
        this.restoring = false;
        this.waiting.clear();
        for (const m of this.members.values()) m.events.onDrain();
        return;
      } catch (err) {
        // Only the connection this attempt made: a newer one is not this attempt's to end.
        if (client) this.drop(client, 'destroy');
        this.env.log.warn({ err: (err as Error).message }, 'gateway reconnect failed');
        await this.backoff();
      }
    }
    this.restoring = false;
  }

  /**
   * One device attached again on the restored connection `c`, with its JWT signed again when
   * the proxy holds its key. A device the platform will not take (its own JWT expired, or the
   * attach refused or unanswered while `c` lives) leaves the
   * link and its session ends; it must not hold back the other devices, which a failed attempt
   * would (the whole restore starts over, forever, while that device stays). Fails only when
   * `c` itself goes.
   */
  private async reattach(c: NorthClient, m: GatewayMember): Promise<void> {
    let attach = m.plan.attach;
    if (m.plan.freshAttach) {
      try {
        attach = await m.plan.freshAttach();
      } catch {
        return this.expel(m, 'device_credentials_unavailable');
      }
      // It left meanwhile and its detach went: an attach now would keep it attached up there.
      if (this.members.get(m.deviceId) !== m) return;
    }
    if (attachJwtExpired(attach, Date.now())) return this.expel(m, 'device_jwt_expired');
    try {
      await attachOn(c, m, this.control, this.env.log, attach);
    } catch (err) {
      if (c !== this.client || this.closed) throw err;
      if (this.env.repeats.allow('warn', REATTACH_FAILED, 'gateway_reattach_failed'))
        this.env.log.warn({ deviceId: m.deviceId, err: (err as Error).message }, REATTACH_FAILED);
      this.expel(m, 'gateway_reattach_failed');
    }
  }

  /** `m` leaves the link (detached as a device whose session ended), then its session ends. */
  private expel(m: GatewayMember, reason: string): void {
    this.detach(m);
    m.expel(reason);
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
      w.done(p.reasonCode ?? 0);
      return;
    }
    const linkWasFull = this.book.inFlight >= this.maxPerLink;
    // The answer to an uplink whose device left: nobody to tell, its id is free again.
    let m: GatewayMember | undefined;
    if (!this.book.settleOrphan(id)) {
      const pending = this.pending.get(id);
      if (!pending) return;
      this.pending.delete(id);
      m = pending.member;
      m.acked();
      m.events.onAck(p);
    }
    // Room again: for everyone if the link was full, else for this device if it waits. A
    // link whose writes are blocked wakes them on its drain instead.
    if (this.waiting.size === 0 || !this.client || this.client.blocked) return;
    if (linkWasFull) this.wakeWaiting();
    else if (m && this.waiting.has(m) && m.inflight < this.maxPerDevice) {
      this.waiting.delete(m);
      m.events.onDrain();
    }
  }

  private route(p: IPublishPacket): void {
    if (this.gatewaySubs.some((s) => topicMatches(s.topic, p.topic))) {
      this.routeError(p);
    } else {
      const m = this.routes.find(p.topic, (x) => x.matches(p.topic));
      if (m && this.client) {
        m.deliver(p, this.client);
        return;
      }
    }
    // Not for any attached device (or an error report): consumed here.
    if (p.qos === 1) this.client?.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 });
  }

  /**
   * The platform reported the PUBLISH with this id failed: no PUBACK will come for it. An
   * attach or detach waiting for it fails now; one nobody waits for any more frees its id
   * (kept, it would take one of the connection's ids for good at each refused attach).
   */
  private refused(id: number, type: string): void {
    const w = this.waiters.get(id);
    if (w && w.client === this.client) {
      this.waiters.delete(id);
      w.done(new Error(`refused by the platform (${type})`));
    } else this.book.settleOrphan(id);
  }

  private routeError(p: IPublishPacket): void {
    const report = parseErrorReport(p.payload);
    if (!report) {
      this.env.log.warn('unparseable gateway error report');
      return;
    }
    const { type, deviceId, description, packetId } = report;
    this.env.onError?.(type);
    if (packetId !== undefined) this.refused(packetId, type);
    const member = deviceId !== undefined ? this.members.get(deviceId) : undefined;
    if (this.env.repeats.allow('warn', ERROR_REPORTED, type))
      this.env.log.warn({ errorType: type, attached: Boolean(member) }, ERROR_REPORTED);
    member?.events.onGatewayError({ type, description });
  }
}
