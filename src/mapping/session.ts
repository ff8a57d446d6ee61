/**
 * The per-connection translator. Everything it runs was compiled at load (templates,
 * codecs, rule lists per kind); per message it splits the topic once, finds the first
 * matching rule, decodes into the canonical model and encodes on the other side.
 */
import type { IPublishPacket, ISubscribePacket, IUnsubscribePacket, QoS } from 'mqtt-packet';
import type { Outcome, PublishOut, SessionMapper, SubscribePlan, UnsubscribePlan } from '../core/contract.js';
import type { CompiledDialect, Rule } from './dialect.js';
import { EchoScope } from './echo-scope.js';
import type { LastValues } from './last-values.js';
import { type Canonical, type Kind, valueOverLimit } from './model.js';
import { encodeAs, type Plan } from './plan.js';
import { type RuleSet, ruleSet, sourcesOf } from './rule-set.js';
import { decodeLevel, filterMatches, safeLevel, splitTopic, type Vars } from './template.js';
import { keyIn, sameKey } from './topic-key.js';

export interface SessionParams {
  plan: Plan;
  vars: Readonly<Vars>;
  southScheme: string | undefined;
  northScheme: string | undefined;
  /** MQTT version of each side: MQTT 5 properties are kept only toward a v5 peer. */
  southVersion: number;
  northVersion: number;
  nowUs: () => number;
  /**
   * Echo set and north filters that outlive the session (persistent north sessions, by
   * client id); a fresh scope otherwise.
   */
  echo?: EchoScope;
  /** Called once when the session closes (the engine lets go of a shared echo scope). */
  onClose?: () => void;
  /**
   * The north session outlives the connection (clean session 0): auto-subscriptions are made
   * QoS 1 so the platform keeps what arrives while the device is offline, and what it kept is
   * delivered before the device has subscribed again.
   */
  persistent?: boolean;
  /**
   * The client came through a native WebSocket (one socket per topic): a filter that is not
   * allowed fails (0x80, the handshake's 403) even where the dialect is silent on MQTT.
   */
  native?: boolean;
  /** Last values shared by the route's sessions, for `?pubStates=1` (dialects declaring that option). */
  lastValues?: LastValues;
  /**
   * false: an uplink-only route. No automatic north subscription, a SUBSCRIBE is refused
   * (0x80; a dialect with automatic subscriptions keeps its fixed answer), nothing is
   * remembered as an echo, and whatever arrives from the north is dropped.
   */
  downlinks?: boolean;
  /**
   * The key the client authenticated with, when its dialect takes keys on topics (EVRYTHNG
   * `?access_token=`): a filter carrying another key is refused (0x80), a publish dropped.
   */
  key?: string | undefined;
  /**
   * The south dialect's clients may be gateways (a route with `south_gateway`) and this session
   * is a device connected directly: a gateway control message (attach, detach) from it closes
   * the connection, as the platform does ("control messages only from gateways").
   */
  notGateway?: boolean;
}

let sessionCount = 0;

/** The empty map every session starts with (a session's own is made on its first write); refuses writes. */
class NoEntries extends Map<unknown, unknown> {
  override set(): this {
    throw new Error('the shared empty map is read-only');
  }
}
const NONE: unknown = new NoEntries();
const none = <K, V>(): Map<K, V> => NONE as Map<K, V>;

/** Uplink topics whose rule match a session keeps. */
const UP_MATCHES = 32;

/**
 * A south rule matched by an uplink topic: its captures (read only), whether the identity
 * they name is the session's own, and the topic without `?` options.
 */
interface UpMatch {
  readonly rule: Rule;
  readonly caps: Readonly<Vars>;
  readonly own: boolean;
  readonly base: string;
}

export { usable } from './rule-set.js';

interface SouthSub {
  levels: string[];
  north: string[];
}

/** application/json and the structured +json types. */
function isJsonType(ct: string): boolean {
  const t = ct.split(';')[0]?.trim().toLowerCase() ?? '';
  return t === 'application/json' || t.endsWith('+json');
}

export class DialectSession implements SessionMapper {
  private readonly south: CompiledDialect;
  private readonly north: CompiledDialect;
  private readonly southUp: readonly Rule[];
  private readonly northDown: readonly Rule[];
  private readonly northUpByKind: ReadonlyMap<Kind, readonly Rule[]>;
  private readonly southDownByKind: ReadonlyMap<Kind, readonly Rule[]>;
  private readonly northDownByKind: ReadonlyMap<Kind, readonly Rule[]>;
  /** The usable rules, shared with sessions of the same plan, schemes and identity variables. */
  private readonly rules: RuleSet;
  /** The session's echo set (`echoes.set`) and the north filters that decide what goes in it. */
  private readonly echoes: EchoScope;
  // Made on first write (most sessions never subscribe): until then the shared empty maps.
  private southSubs: Map<string, SouthSub> = none<string, SouthSub>();
  private northRefs: Map<string, number> = none<string, number>();
  private readonly auto: Array<{ topic: string; qos: QoS }>;
  private readonly southDown: readonly Rule[];
  /** A dialect translated to itself (identities rewritten): each topic keeps its own rule. */
  private readonly same: boolean;
  /** Scope of last values on topics that name no identity: this session alone. */
  private ownScope: string | undefined;
  private scopes: Map<Rule, string> = none<Rule, string>();
  private closed = false;
  private readonly uplinkOnly: boolean;
  /** The rule of the latest uplink remembered as an echo (the label of echoes dropped on the frame). */
  private echoRule = '';
  /** Uplink topics and the rule each matched (see `upMatch`), made on the first uplink. */
  private upMatches: Map<string, UpMatch> = none<string, UpMatch>();
  /** The side declares `?` options (EVRYTHNG): elsewhere `?` is part of a topic, not a query. */
  private readonly southOptions: boolean;
  private readonly northOptions: boolean;

  constructor(private readonly p: SessionParams) {
    this.echoes = p.echo ?? new EchoScope(false);
    this.south = p.plan.south;
    this.north = p.plan.north;
    const rules = ruleSet(p.plan, p.southScheme, p.northScheme, p.vars);
    this.rules = rules;
    this.southUp = rules.southUp;
    this.northDown = rules.northDown;
    this.northUpByKind = rules.northUpByKind;
    this.same = this.south.name === this.north.name;
    this.southDown = rules.southDown;
    this.southDownByKind = rules.southDownByKind;
    this.northDownByKind = rules.northDownByKind;
    this.auto = [];
    this.uplinkOnly = p.downlinks === false;
    this.southOptions = this.south.options.size > 0;
    this.northOptions = this.north.options.size > 0;
    if (this.south.subs.automatic && !this.uplinkOnly) {
      for (const k of this.southDownByKind.keys()) {
        const ruleQos = new Map<string, number>();
        for (const f of this.northFiltersFor(k, {}, ruleQos)) {
          if (!this.northRefs.has(f)) {
            this.refs().set(f, 1);
            this.echoes.hold(f);
            // QoS 1 when the north rule is delivered at QoS 1 (ClearBlade config: the platform
            // retries it until acknowledged), whatever the device takes.
            const qos = p.persistent
              ? 1
              : Math.min(1, Math.max(this.south.quirks.maxDownlinkQos, ruleQos.get(f) ?? 0));
            this.auto.push({ topic: f, qos: qos as QoS });
          }
        }
      }
    }
  }

  uplink(packet: IPublishPacket): Outcome {
    try {
      return this.up(packet, false);
    } catch (err) {
      return tooDeep(err);
    }
  }

  /**
   * An uplink, or (`will`) the north form of a will message: the broker publishes it when the
   * connection is lost, maybe hours later, so it is not the topic's last value now and carries
   * no time of its own (the time fields a shape may leave out are left out: the platform takes
   * its receive time).
   */
  private up(packet: IPublishPacket, will: boolean): Outcome {
    if (this.p.key !== undefined && packet.topic.includes('?') && this.otherKey(packet.topic))
      return { verdict: 'drop', reason: 'foreign_key' };
    const m = this.upMatch(packet.topic);
    if (m === undefined) return this.unknown();
    const { rule, caps } = m;
    if (this.p.notGateway && (rule.up === 'attach' || rule.up === 'detach'))
      return { verdict: 'disconnect', reason: 'not_a_gateway', rule: rule.name };
    if (!m.own) return { verdict: 'drop', reason: 'foreign_identity', rule: rule.name };
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const msg: Canonical = { kind: rule.up as Kind, qos: packet.qos, retain: packet.retain };
    const props = packet.properties;
    if (rule.codec.samples && props?.contentType !== undefined && !isJsonType(props.contentType)) {
      // A declared non-JSON payload on a topic read as JSON values (akenza reads a payload by
      // its content type; JSON only when there is none): carried as an opaque event body.
      msg.kind = 'event';
      msg.body = payload;
    } else {
      const err = rule.codec.decode(payload, caps.key ?? rule.fixedKey, msg);
      if (err) return { verdict: 'drop', reason: err, rule: rule.name };
      // One value over the dialect's limit refuses the publish (as a payload over the limit does).
      if (valueOverLimit(msg, payload.length, this.south.maxValueBytes))
        return { verdict: 'disconnect', reason: 'value_too_large', rule: rule.name };
      // One the platform does not take (its dialect's limit) is not sent: dropped, as a
      // downlink value over the device's limit is.
      if (valueOverLimit(msg, payload.length, this.north.maxValueBytes))
        return { verdict: 'drop', reason: 'value_too_large', rule: rule.name };
      if (rule.codec.contentType) msg.typeHint = rule.codec.contentType;
    }
    if (caps.name !== undefined) msg.name = caps.name;
    if (props?.contentType) msg.contentType = props.contentType;
    if (props?.userProperties) msg.userProperties = props.userProperties;
    const kind = this.p.plan.mapKind('up', msg.kind, this.northUpByKind, msg.name);
    const targets = kind ? this.sameRule(this.northUpByKind.get(kind), rule) : undefined;
    if (!kind || !targets) return { verdict: 'drop', reason: 'no_north_rule', rule: rule.name };
    const now = will ? undefined : this.p.nowUs();
    const out = encodeAs(msg, kind, targets, this.p.vars, now, this.p.northVersion, payload);
    if (!out.ok) return { verdict: 'drop', reason: out.reason, rule: rule.name };
    const cap = this.north.maxQos;
    const echo = out.echo && !this.uplinkOnly;
    for (const o of out.list) {
      if (o.qos > cap) o.qos = cap;
      if (echo) this.remember(o);
    }
    if (echo) this.echoRule = out.rule.name;
    if (this.p.lastValues && rule.down !== undefined && !will)
      this.p.lastValues.set(this.scopeOf(rule), m.base, payload);
    return out.reason
      ? { north: out.list, verdict: 'continue', rule: rule.name, reason: out.reason }
      : { north: out.list, verdict: 'continue', rule: rule.name };
  }

  /** The north form of a will message: an uplink that is never remembered as an echo. */
  translateWill(packet: IPublishPacket): Outcome {
    const before = this.echoes.set.entries;
    const o = this.up(packet, true);
    this.echoes.set.forgetLast(this.echoes.set.entries - before);
    return o;
  }

  downlink(packet: IPublishPacket): Outcome {
    try {
      return this.down(packet);
    } catch (err) {
      return tooDeep(err);
    }
  }

  private down(packet: IPublishPacket): Outcome {
    if (this.uplinkOnly) return { verdict: 'drop', reason: 'no_downlinks' };
    const { levels } = splitTopic(packet.topic, this.northOptions);
    const caps: Vars = {};
    const rule = this.findRule(this.northDown, levels, caps);
    if (!rule) return { verdict: 'drop', reason: 'unmapped' };
    if (!this.ownIdentity(rule, caps))
      return { verdict: 'drop', reason: 'foreign_identity', rule: rule.name };
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (rule.echo && this.isEcho(packet.topic, payload))
      return { verdict: 'drop', reason: 'echo', rule: rule.name };
    const msg: Canonical = { kind: rule.down as Kind, qos: packet.qos, retain: packet.retain };
    const err = rule.codec.decode(payload, caps.key ?? rule.fixedKey, msg);
    if (err) return { verdict: 'drop', reason: err, rule: rule.name };
    if (caps.name !== undefined) msg.name = caps.name;
    if (rule.codec.contentType) msg.typeHint = rule.codec.contentType;
    if (packet.properties?.contentType) msg.contentType = packet.properties.contentType;
    const kind = this.p.plan.mapKind('down', msg.kind, this.southDownByKind, msg.name);
    const targets = kind ? this.sameRule(this.southDownByKind.get(kind), rule) : undefined;
    if (!kind || !targets) return { verdict: 'drop', reason: 'no_south_rule', rule: rule.name };
    // A value the device may not receive (over its dialect's limit) is not delivered.
    if (valueOverLimit(msg, payload.length, this.south.maxValueBytes))
      return { verdict: 'drop', reason: 'value_too_large', rule: rule.name };
    // A history (several times of one key) goes out one message per time where the device's
    // shape holds one value per key, as on the uplink: none is lost.
    const now = this.p.nowUs();
    const out = encodeAs(msg, kind, targets, this.p.vars, now, this.p.southVersion, payload);
    if (!out.ok) return { verdict: 'drop', reason: out.reason, rule: rule.name };
    this.learn(out.list, out.rule);
    if (!this.south.subs.automatic && !(this.p.persistent && this.southSubs.size === 0)) {
      const list: PublishOut[] = [];
      for (const o of out.list) if (this.subscribed(o.topic)) list.push(o);
      // A message fits several topics (EVRYTHNG /properties/{key} or /properties, an action on
      // /actions/{type} or /actions/all): when the preferred one is not subscribed, the first
      // other shape the client subscribed to, bound to the same identity (a Thng's property or
      // action never goes out as a product's). A dialect translated to itself keeps the topic.
      const first = targets[0] as Rule;
      for (
        let i = msg.kind === 'samples' ? 1 : 0;
        !this.same && list.length === 0 && i < targets.length;
        i++
      ) {
        const t = targets[i] as Rule;
        if (t.identityCaps.join() !== first.identityCaps.join() || t.needs.join() !== first.needs.join())
          continue;
        const more = encodeAs(msg, kind, [t], this.p.vars, now, this.p.southVersion, payload);
        if (more.ok) for (const o of more.list) if (this.subscribed(o.topic)) list.push(o);
        if (more.ok && list.length > 0) this.learn(list, more.rule);
      }
      if (list.length === 0) return { verdict: 'drop', reason: 'not_subscribed', rule: rule.name };
      return { south: list, verdict: 'continue', rule: rule.name };
    }
    return { south: out.list, verdict: 'continue', rule: rule.name };
  }

  subscribe(packet: ISubscribePacket): SubscribePlan {
    const plan: SubscribePlan = { north: [], granted: [] };
    const index = new Map<string, number>();
    const fixed = this.south.subs.grantedQos;
    if (this.uplinkOnly && !this.south.subs.automatic) {
      for (const _ of packet.subscriptions) plan.granted.push({ code: 0x80 });
      return plan;
    }
    for (const s of packet.subscriptions) {
      const { levels, options } = splitTopic(s.topic, this.southOptions);
      if (options !== undefined && this.otherKey(options)) {
        plan.granted.push({ code: 0x80 });
        continue;
      }
      const filter = levels.join('/');
      const caps: Vars = {};
      const allowed = this.matchAllowed(filter.split('/'), caps);
      if (!allowed) {
        const o = this.south.subs.otherwise;
        if (o === 'disconnect') return { north: [], granted: [], disconnect: 'bad_subscription' };
        plan.granted.push({
          code: o === 'silent' && !this.p.native ? Math.min(s.qos, this.south.quirks.maxDownlinkQos) : 0x80,
        });
        continue;
      }
      if (options?.pubStates === '1' && this.south.options.has('pubStates')) {
        const last = this.lastValue(levels);
        if (last) {
          const qos = Math.min(s.qos, this.south.quirks.maxDownlinkQos) as QoS;
          if (!plan.south) plan.south = [];
          plan.south.push({ topic: filter, payload: last, qos, retain: false });
        }
      }
      // A dialect translated to itself subscribes to the same filter (its ?project= unchanged).
      const north = this.south.subs.automatic
        ? []
        : this.same
          ? [filter + (options?.project ? `?project=${options.project}` : this.scope())]
          : [...new Set(allowed.flatMap((k) => this.northFiltersFor(k, caps)))];
      const prev = this.southSubs.get(filter);
      if (prev) for (const f of prev.north) this.unref(f);
      if (this.southSubs === NONE) this.southSubs = new Map();
      this.southSubs.set(filter, { levels: filter.split('/'), north });
      const from: number[] = [];
      for (const f of north) {
        this.refs().set(f, (this.northRefs.get(f) ?? 0) + 1);
        this.echoes.hold(f);
        let i = index.get(f);
        if (i === undefined) {
          i = plan.north.length;
          index.set(f, i);
          plan.north.push({ topic: f, qos: Math.min(s.qos, this.south.quirks.maxDownlinkQos) as QoS });
        }
        from.push(i);
      }
      if (fixed !== undefined || from.length === 0)
        plan.granted.push({ code: fixed ?? Math.min(s.qos, this.south.quirks.maxDownlinkQos) });
      else plan.granted.push({ from });
    }
    return plan;
  }

  unsubscribe(packet: IUnsubscribePacket): UnsubscribePlan {
    if (this.south.unsubscribe === 'ack_only') return { north: [], ackOnly: true };
    const north: string[] = [];
    for (const t of packet.unsubscriptions) {
      const filter = splitTopic(t, this.southOptions).levels.join('/');
      const sub = this.southSubs.get(filter);
      if (!sub) continue;
      this.southSubs.delete(filter);
      for (const f of sub.north) {
        if (!this.unref(f)) continue;
        north.push(f);
        this.echoes.release(f);
      }
    }
    return { north };
  }

  autoSubscribe(): Array<{ topic: string; qos: QoS }> {
    return this.auto;
  }

  /** The north CONNACK's session-present flag: what the broker kept of earlier connections. */
  onNorthConnack(sessionPresent: boolean): void {
    this.echoes.northSession(sessionPresent, [...this.northRefs.keys()]);
  }

  takeEcho(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): string | undefined {
    return this.echoes.set.takeFrame(frame, topicStart, topicEnd, payloadStart) ? this.echoRule : undefined;
  }

  /**
   * An error a gateway platform addressed to this device: published to it when its dialect
   * has an error topic, else the device is disconnected when its dialect closes connections
   * on anything unexpected (Connector), else dropped (the core counts and logs it).
   */
  onGatewayError(error: { type: string; description?: string }): Outcome {
    const rule = this.southDownByKind.get('error')?.[0];
    const topic = rule?.tpl.build(this.p.vars);
    if (topic !== undefined) {
      const body = {
        error_type: error.type,
        device_id: this.p.vars.deviceId,
        description: error.description,
      };
      const payload = Buffer.from(JSON.stringify(body));
      return {
        south: [{ topic, payload, qos: 0, retain: false }],
        verdict: 'continue',
        reason: 'gateway_error',
      };
    }
    const close = this.south.unknownTopic === 'disconnect';
    return { verdict: close ? 'disconnect' : 'drop', reason: 'gateway_error' };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.southSubs.clear();
    this.northRefs.clear();
    // A persistent north session keeps its echo set (shared by the engine): echoes queued
    // while the device is away are recognised when it reconnects.
    if (!this.p.echo) this.echoes.set.clear();
    else this.echoes.set.settle();
    this.p.onClose?.();
  }

  /** North filters to subscribe for a kind the south side receives. */
  northFiltersFor(southKind: Kind, caps: Readonly<Vars>, ruleQos?: Map<string, number>): string[] {
    const out: string[] = [];
    // A north dialect that scopes subscriptions with ?project= (EVRYTHNG) gets the session's project.
    const scope = this.scope();
    for (const nk of sourcesOf(this.p.plan, this.rules, southKind)) {
      for (const r of this.northDownByKind.get(nk) ?? []) {
        const f = (r.subscribe ?? r.tpl).filter(
          this.p.vars,
          r.keyCap ? caps.key : undefined,
          r.nameCap ? caps.name : undefined,
        );
        if (f !== undefined && !out.includes(f + scope)) out.push(f + scope);
        if (f !== undefined && ruleQos && r.qos !== undefined)
          ruleQos.set(f + scope, Math.max(ruleQos.get(f + scope) ?? 0, r.qos));
        if (nk === 'samples') break; // one subscription per kind: the preferred rule
      }
    }
    return out;
  }

  /**
   * `?project=` for a north dialect that scopes subscriptions by project (EVRYTHNG), else ''.
   * A `project` the south dialect names too is the south's own (a ClearBlade client id's), not a scope.
   */
  private scope(): string {
    const north = this.north.options.has('project') && (this.same || !this.south.identity.has('project'));
    const project = north ? this.p.vars.project : undefined;
    return project ? `?project=${encodeURIComponent(project)}` : '';
  }

  /** Between a dialect and itself, the rule of the same name (the same topic) only. */
  private sameRule(targets: readonly Rule[] | undefined, from: Rule): readonly Rule[] | undefined {
    if (!this.same || !targets) return targets;
    const r = targets.find((t) => t.name === from.name);
    return r ? [r] : targets;
  }

  /** The north filter reference counts, made on first write. */
  private refs(): Map<string, number> {
    if (this.northRefs === NONE) this.northRefs = new Map();
    return this.northRefs;
  }

  private unref(f: string): boolean {
    const n = (this.northRefs.get(f) ?? 1) - 1;
    if (n > 0) {
      this.northRefs.set(f, n);
      return false;
    }
    this.northRefs.delete(f);
    return true;
  }

  /**
   * The south rule an uplink topic matches, with its captures: a device publishes to a few
   * topics over and over, so the match is kept per topic (up to UP_MATCHES of them; then the
   * table starts again). Unmatched topics are not kept.
   */
  private upMatch(topic: string): UpMatch | undefined {
    const hit = this.upMatches.get(topic);
    if (hit !== undefined) return hit;
    const { levels } = splitTopic(topic, this.southOptions);
    const caps: Vars = {};
    const rule = this.findRule(this.southUp, levels, caps);
    if (!rule) return undefined;
    const m: UpMatch = {
      rule,
      caps,
      own: this.ownIdentity(rule, caps),
      base: this.southOptions && topic.includes('?') ? levels.join('/') : topic,
    };
    if (this.upMatches === NONE) this.upMatches = new Map();
    else if (this.upMatches.size >= UP_MATCHES) this.upMatches.clear();
    this.upMatches.set(topic, m);
    return m;
  }

  private findRule(rules: readonly Rule[], levels: string[], caps: Vars): Rule | undefined {
    for (const r of rules) {
      if (r.tpl.match(levels, caps)) return r;
      for (const a of r.alts) if (a.match(levels, caps)) return r;
    }
    return undefined;
  }

  private ownIdentity(rule: Rule, caps: Readonly<Vars>): boolean {
    for (const c of rule.identityCaps) if (caps[c] !== this.p.vars[c]) return false;
    return true;
  }

  private matchAllowed(levels: string[], caps: Vars): Kind[] | undefined {
    for (const a of this.south.subs.allowed) {
      if (a.levels.length !== levels.length) continue;
      if (a.needs.some((v) => this.p.vars[v] === undefined)) continue;
      let ok = true;
      for (let i = 0; ok && i < levels.length; i++) {
        const l = a.levels[i];
        const raw = levels[i] as string;
        // South topics percent-escaped (EVRYTHNG): a filter's captured levels are decoded as a topic's are.
        const v = l && !('lit' in l) && this.south.percent ? decodeLevel(raw) : raw;
        if (!l || v === undefined) ok = false;
        else if ('lit' in l) ok = l.lit === v;
        else if (this.south.identity.has(l.cap)) ok = this.p.vars[l.cap] === v;
        else if (safeLevel(v)) caps[l.cap] = v;
        else ok = false;
      }
      if (!ok) continue;
      // A key named through a rule's aliases (foxtrackr bat) is the canonical key (battery).
      const key = caps.key;
      if (key !== undefined)
        for (const r of this.southDown)
          if (r.keyNames && Object.hasOwn(r.keyNames, key)) {
            caps.key = r.keyNames[key] as string;
            break;
          }
      return a.kinds.filter((k) => this.southDownByKind.has(k));
    }
    return undefined;
  }

  /** Identity scope of a rule's topics: the values of the identity variables it is bound to. */
  private scopeOf(rule: Rule): string {
    let s = this.scopes.get(rule);
    if (s !== undefined) return s;
    if (rule.identityCaps.length === 0 && rule.needs.length === 0)
      s = this.ownScope ??= `session:${++sessionCount}`;
    else {
      s = '';
      for (const c of rule.identityCaps) s += `${c}=${this.p.vars[c] ?? ''}\0`;
      for (const c of rule.needs) s += `${c}=${this.p.vars[c] ?? ''}\0`;
    }
    if (this.scopes === NONE) this.scopes = new Map();
    this.scopes.set(rule, s);
    return s;
  }

  /** Keeps the south publishes of a downlink (written by `rule`) as the last values of their topics. */
  private learn(list: readonly PublishOut[], rule: Rule): void {
    const lv = this.p.lastValues;
    if (!lv) return;
    const scope = this.scopeOf(rule);
    for (const o of list) lv.set(scope, o.topic, o.payload);
  }

  /** The last value known on a south topic (no wildcards), within this session's scope. */
  private lastValue(levels: string[]): Buffer | undefined {
    const lv = this.p.lastValues;
    if (!lv || levels.some((l) => l === '+' || l === '#')) return undefined;
    const caps: Vars = {};
    const rule = this.findRule(this.southDown, levels, caps);
    if (!rule || !this.ownIdentity(rule, caps)) return undefined;
    return lv.get(this.scopeOf(rule), levels.join('/'));
  }

  private subscribed(topic: string): boolean {
    const levels = topic.split('/');
    for (const s of this.southSubs.values()) if (filterMatches(s.levels, levels)) return true;
    return false;
  }

  /** A publish outside the rules: disconnect, drop, or an error message on the device's error topic. */
  private unknown(): Outcome {
    const u = this.south.unknownTopic;
    if (u === 'error') {
      const rule = this.southDownByKind.get('error')?.[0];
      const topic = rule?.tpl.build(this.p.vars);
      if (topic !== undefined && (this.south.subs.automatic || this.subscribed(topic))) {
        const error = {
          error_type: 'GATEWAY_INVALID_MQTT_TOPIC',
          device_id: this.p.vars.deviceId,
          description: 'no rule matches this topic',
        };
        const payload = Buffer.from(JSON.stringify(error));
        return {
          south: [{ topic, payload, qos: 0, retain: false }],
          verdict: 'drop',
          reason: 'unknown_topic',
        };
      }
    }
    return { verdict: u === 'disconnect' ? 'disconnect' : 'drop', reason: 'unknown_topic' };
  }

  /** A topic (or its options) carrying a key that is not the one the session was opened with. */
  private otherKey(topic: string | Readonly<Vars>): boolean {
    const own = this.p.key;
    if (own === undefined) return false;
    const given = keyIn(typeof topic === 'string' ? splitTopic(topic).options : topic);
    return given !== undefined && !sameKey(given, own);
  }

  /** Only what a north subscription covers can come back (see EchoScope). */
  private remember(o: PublishOut): void {
    if (this.echoes.covers(o.topic)) this.echoes.set.add(o.topic, o.payload);
  }

  private isEcho(topic: string, payload: Buffer): boolean {
    return this.echoes.set.take(topic, payload);
  }
}

/**
 * A JSON payload nested thousands of levels deep overflows the stack of JSON.stringify (and of
 * the literal-keeping parser): the message is dropped as a bad payload, not the connection
 * closed as by an internal error. Anything else thrown is a bug and goes on.
 */
function tooDeep(err: unknown): Outcome {
  if (err instanceof RangeError) return { verdict: 'drop', reason: 'bad_payload' };
  throw err;
}
