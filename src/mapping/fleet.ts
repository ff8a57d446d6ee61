/**
 * One login serving many devices (a record with `devices:`): an application subscribed to
 * `foxtrackr/#` or `foxtrackr/+/V3.0/bat` through one north connection. Each device gets a
 * DialectSession of its own (made on first use, its variables the login's plus the device's),
 * all sharing the login's north connection and echo scope. This mapper only routes:
 *
 * - a south filter is expanded into the devices it covers (`expandFilter`) and given to each
 *   device's session as that device's filter (`foxtrackr/#` → `foxtrackr/777/#`); the north
 *   subscriptions are theirs, and the filter's grant is the lowest of theirs;
 * - a north PUBLISH names its device in its topic (`/thngs/{thngId}/...`): found by an index,
 *   translated by that device's session, then delivered on the device's topic when a filter
 *   that is not a group's covers it, and on `{prefix}/{group}/...` for each of its groups
 *   the client subscribed to by name (the same message on two topics the client asked for);
 * - an uplink names its device in its south topic: that device's session sends it north.
 *
 * Per message: one topic split and one rule match to find the device (no scan of the devices).
 */
import type { IPublishPacket, ISubscribePacket, IUnsubscribePacket, QoS } from 'mqtt-packet';
import type { Outcome, PublishOut, SessionMapper, SubscribePlan, UnsubscribePlan } from '../core/contract.js';
import type { Rule } from './dialect.js';
import { EchoScope } from './echo-scope.js';
import { deviceBy, expandFilter, type Fleet, type FleetLayout, groupsOf } from './fleet-index.js';
import type { Plan } from './plan.js';
import type { DialectSession } from './session.js';
import { filterMatches, splitTopic, type Vars } from './template.js';

export interface FleetParams {
  plan: Plan;
  fleet: Fleet;
  layout: FleetLayout;
  /** The login's echo scope (persistent: shared with its later connections), given to every device. */
  echo?: EchoScope;
  onClose?: () => void;
  /** The north session outlives the connection: what it kept is delivered before the client subscribes. */
  persistent: boolean;
  /** A device's own session, with the device's variables over the login's and the shared echo scope. */
  make(device: Readonly<Vars>, echo: EchoScope): DialectSession;
}

/** A device's filter held for the client's filters, with the north filters it made. */
interface Held {
  device: number;
  count: number;
  north: string[];
}

/** One south filter of the client: the devices' filters it holds. */
interface AppSub {
  levels: string[];
  group: string | undefined;
  /** The devices' filters (each names its device, so it is a key of `held` on its own). */
  held: string[];
  qos: QoS;
}

export class FleetSession implements SessionMapper {
  private readonly sessions: Array<DialectSession | undefined> = [];
  private readonly held = new Map<string, Held>();
  private readonly subs = new Map<string, AppSub>();
  /**
   * North filter → how many of the client's filters need it at QoS 0, 1 and 2: the north
   * session holds it once, so it is subscribed at the highest (MQTT 3.1.1 §3.3.5), not at the
   * QoS of the last filter that asked (`foxtrackr/+/V3.0/bat` at 0 after `foxtrackr/777/V3.0/bat`
   * at 2 would give device 777's messages at 0).
   */
  private readonly wants = new Map<string, [number, number, number]>();
  /** The client's filters that name no group, and those naming each group. */
  private plain: AppSub[] = [];
  private readonly byGroup = new Map<string, AppSub[]>();
  private readonly echo: EchoScope;
  private readonly southUp: readonly Rule[];
  private readonly northDown: readonly Rule[];
  private readonly southOptions: boolean;
  private readonly northOptions: boolean;
  private readonly ofDevice: Map<number, string[]>;
  private lastUp: DialectSession | undefined;
  private closed = false;

  constructor(private readonly p: FleetParams) {
    this.echo = p.echo ?? new EchoScope(false);
    this.southUp = p.plan.south.upRules;
    this.northDown = p.plan.north.downRules;
    this.southOptions = p.plan.south.options.size > 0;
    this.northOptions = p.plan.north.options.size > 0;
    this.ofDevice = groupsOf(p.fleet, p.layout.deviceVar).ofDevice;
  }

  get deviceCount(): number {
    return this.p.fleet.devices.length;
  }

  /** Device i's session, made on first use. */
  private device(i: number): DialectSession {
    let s = this.sessions[i];
    if (!s) {
      s = this.p.make(this.p.fleet.devices[i] as Vars, this.echo);
      this.sessions[i] = s;
    }
    return s;
  }

  /** The device a topic names (by the identity captures of the first rule it matches). */
  private find(rules: readonly Rule[], topic: string, options: boolean): number | 'none' | 'unmatched' {
    const { levels } = splitTopic(topic, options);
    const caps: Vars = {};
    for (const r of rules) {
      if (!r.tpl.match(levels, caps) && !r.alts.some((a) => a.match(levels, caps))) continue;
      for (const c of r.identityCaps) {
        const v = caps[c];
        const i = v === undefined ? undefined : deviceBy(this.p.fleet, c, v);
        if (i !== undefined) return i;
      }
      return 'none';
    }
    return 'unmatched';
  }

  uplink(packet: IPublishPacket): Outcome | Promise<Outcome> {
    const i = this.find(this.southUp, packet.topic, this.southOptions);
    // A topic of no device of the login (or a group's): handled as any session handles another
    // device's topic (dropped, foreign_identity), or an unknown topic.
    const s = this.device(typeof i === 'number' ? i : 0);
    if (typeof i === 'number') this.lastUp = s;
    return s.uplink(packet);
  }

  translateWill(packet: IPublishPacket): Outcome {
    const i = this.find(this.southUp, packet.topic, this.southOptions);
    return this.device(typeof i === 'number' ? i : 0).translateWill(packet);
  }

  downlink(packet: IPublishPacket): Outcome {
    const i = this.find(this.northDown, packet.topic, this.northOptions);
    if (i === 'unmatched') return { verdict: 'drop', reason: 'unmapped' };
    if (i === 'none') return { verdict: 'drop', reason: 'foreign_identity' };
    const out = this.device(i).downlink(packet);
    if (out.verdict !== 'continue' || !out.south) return out;
    // What the north session kept while the client was away comes before it subscribes again.
    if (this.p.persistent && this.subs.size === 0) return out;
    const list: PublishOut[] = [];
    const groups = this.byGroup.size > 0 ? this.ofDevice.get(i) : undefined;
    const at = this.p.layout.level;
    // Each copy at most at the highest QoS of the filters matching its topic (MQTT-3.3.5-1): the
    // north filter may be held higher for another one (a group's, on the group's topic).
    for (const o of out.south) {
      const levels = o.topic.split('/');
      const q = highestMatch(this.plain, levels);
      if (q !== -1) list.push(q < o.qos ? { ...o, qos: q } : o);
      for (const g of groups ?? []) {
        const filters = this.byGroup.get(g);
        if (!filters) continue;
        levels[at] = g;
        const qg = highestMatch(filters, levels);
        if (qg !== -1) list.push({ ...o, topic: levels.join('/'), qos: Math.min(qg, o.qos) as QoS });
      }
    }
    if (list.length === 0)
      return { verdict: 'drop', reason: 'not_subscribed', ...(out.rule ? { rule: out.rule } : {}) };
    return { ...out, south: list };
  }

  subscribe(packet: ISubscribePacket): SubscribePlan {
    const plan: SubscribePlan = { north: [], granted: [] };
    const index = new Map<string, number>();
    const south = this.p.plan.south;
    const ids = this.p.fleet.devices;
    const dv = this.p.layout.deviceVar;
    for (const s of packet.subscriptions) {
      const levels = splitTopic(s.topic, this.southOptions).levels;
      const filter = levels.join('/');
      const cover = expandFilter(this.p.layout, this.p.fleet, levels);
      const qos = Math.min(s.qos, south.quirks.maxDownlinkQos) as QoS;
      const held: string[] = [];
      const from: number[] = [];
      const take = (i: number): boolean => {
        const f = cover?.internal(ids[i]?.[dv] as string) as string;
        const h = this.hold(i, f, qos);
        if (!h) return false;
        held.push(f);
        this.want(h.north, qos, 1);
        for (const n of h.north) {
          let x = index.get(n);
          if (x === undefined) {
            x = plan.north.length;
            index.set(n, x);
            plan.north.push({ topic: n, qos });
          }
          from.push(x);
        }
        return true;
      };
      // The devices of a record share their rules: a device filter the first device may not
      // take (foxtrackr/+/V9.9/bat) no other may, and 10,000 sessions are not made to hear it.
      const list = cover?.devices ?? [];
      const n = list === 'all' ? ids.length : list.length;
      for (let k = 0; k < n; k++)
        if (!take(list === 'all' ? k : (list[k] as number)) && held.length === 0) break;
      if (held.length === 0) {
        // Covers no device of the login (or none may take it): refused as any filter not allowed.
        if (south.subs.otherwise === 'disconnect')
          return { north: [], granted: [], disconnect: 'bad_subscription' };
        plan.granted.push({ code: south.subs.otherwise === 'silent' ? qos : 0x80 });
        continue;
      }
      const prev = this.subs.get(filter);
      this.subs.set(filter, { levels, group: cover?.group, held, qos });
      // A filter subscribed again replaces the earlier one (its devices' filters are the same).
      if (prev) this.drop(prev);
      this.filtersChanged();
      const fixed = south.subs.grantedQos;
      // A north filter another filter needs at a higher QoS is granted higher: capped at the asked.
      // Over several devices, one the platform refuses does not fail the rest (granted if any is).
      plan.granted.push(
        fixed !== undefined || from.length === 0
          ? { code: fixed ?? qos }
          : { from, max: qos, ...(held.length > 1 ? { any: true } : {}) },
      );
    }
    for (const n of plan.north) n.qos = this.highest(n.topic, n.qos);
    return plan;
  }

  unsubscribe(packet: IUnsubscribePacket): UnsubscribePlan {
    if (this.p.plan.south.unsubscribe === 'ack_only') return { north: [], ackOnly: true };
    const north: string[] = [];
    for (const t of packet.unsubscriptions) {
      const levels = splitTopic(t, this.southOptions).levels;
      const filter = levels.join('/');
      const sub = this.subs.get(filter);
      if (!sub) {
        // Not subscribed on this connection: the persistent north session may hold it from an
        // earlier one (the application came back with clean session 0), so its north filters go.
        if (this.p.persistent) for (const f of this.earlier(levels)) north.push(f);
        continue;
      }
      this.subs.delete(filter);
      // One north filter per device or more: appended one by one (a spread of 100,000 overflows).
      for (const f of this.drop(sub)) north.push(f);
    }
    this.filtersChanged();
    return { north };
  }

  autoSubscribe(): Array<{ topic: string; qos: QoS }> {
    return [];
  }

  onNorthConnack(sessionPresent: boolean): void {
    const current: string[] = [];
    for (const h of this.held.values()) current.push(...h.north);
    this.echo.northSession(sessionPresent, current);
  }

  takeEcho(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): string | undefined {
    // Every device's session shares the echo set: any of them takes the frame.
    const s = this.lastUp ?? this.sessions.find((x) => x !== undefined);
    if (s) return s.takeEcho(frame, topicStart, topicEnd, payloadStart);
    return this.echo.set.takeFrame(frame, topicStart, topicEnd, payloadStart) ? 'echo' : undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions) s?.close();
    this.held.clear();
    this.subs.clear();
    this.wants.clear();
    if (!this.p.echo) this.echo.set.clear();
    this.p.onClose?.();
  }

  /** Device i's filter `f` held once more; its session subscribes on the first hold. */
  private hold(i: number, f: string, qos: QoS): Held | undefined {
    const h = this.held.get(f);
    if (h) {
      h.count++;
      return h;
    }
    const plan = this.device(i).subscribe({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: f, qos }],
    });
    const g = plan.granted[0];
    if (plan.disconnect || !g || ('code' in g && g.code === 0x80)) return undefined;
    const made = { device: i, count: 1, north: plan.north.map((n) => n.topic) };
    this.held.set(f, made);
    return made;
  }

  /** Lets go of a client filter's device filters; returns the north filters no longer needed. */
  private drop(sub: AppSub): string[] {
    const north: string[] = [];
    for (const f of sub.held) {
      const h = this.held.get(f);
      if (h) this.want(h.north, sub.qos, -1);
      if (!h || --h.count > 0) continue;
      this.held.delete(f);
      north.push(
        ...this.device(h.device).unsubscribe({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [f] })
          .north,
      );
    }
    return north;
  }

  /**
   * The north filters a client filter of an earlier connection made (the filter as this one
   * would have subscribed it), but for those a filter of this connection still needs.
   */
  private earlier(levels: readonly string[]): string[] {
    const cover = expandFilter(this.p.layout, this.p.fleet, levels);
    const list = cover?.devices ?? [];
    const ids = this.p.fleet.devices;
    const dv = this.p.layout.deviceVar;
    const north: string[] = [];
    const n = list === 'all' ? ids.length : list.length;
    for (let k = 0; k < n; k++) {
      const i = list === 'all' ? k : (list[k] as number);
      const f = cover?.internal(ids[i]?.[dv] as string) as string;
      if (this.held.has(f)) continue;
      // The device's session counts its north filters: one another of its filters holds stays.
      const s = this.device(i);
      const plan = s.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: f, qos: 0 }] });
      const g = plan.granted[0];
      // A filter the first device may not take no other may (as in subscribe).
      if (plan.disconnect || !g || ('code' in g && g.code === 0x80)) break;
      for (const x of s.unsubscribe({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [f] }).north)
        north.push(x);
    }
    return north;
  }

  /** `by` client filters more (1) or fewer (-1) need each of `north` at `qos`. */
  private want(north: readonly string[], qos: QoS, by: 1 | -1): void {
    for (const n of north) {
      let w = this.wants.get(n);
      if (!w) {
        w = [0, 0, 0];
        this.wants.set(n, w);
      }
      w[qos] += by;
      if (w[0] + w[1] + w[2] <= 0) this.wants.delete(n);
    }
  }

  /** The QoS a north filter is subscribed at: the highest any client filter needs. */
  private highest(north: string, qos: QoS): QoS {
    const w = this.wants.get(north);
    return w ? (w[2] > 0 ? 2 : w[1] > 0 ? 1 : 0) : qos;
  }

  private filtersChanged(): void {
    this.plain = [];
    this.byGroup.clear();
    for (const s of this.subs.values()) {
      if (s.group === undefined) this.plain.push(s);
      else {
        const l = this.byGroup.get(s.group);
        if (l) l.push(s);
        else this.byGroup.set(s.group, [s]);
      }
    }
  }
}

/** The highest QoS among the filters matching a topic's levels, -1 when none does. */
function highestMatch(subs: readonly AppSub[], levels: readonly string[]): QoS | -1 {
  let q: QoS | -1 = -1;
  for (const s of subs) if (s.qos > q && filterMatches(s.levels, levels)) q = s.qos;
  return q;
}
