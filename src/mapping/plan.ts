/**
 * A route's translation plan: the two compiled dialects, the pair's preferences and kind
 * substitutions, and the encoder that turns one canonical message into publishes.
 */
import type { QoS } from 'mqtt-packet';
import type { PublishOut } from '../core/contract.js';
import type { CompiledDialect, Rule } from './dialect.js';
import { encoded, hasLiterals, isJsonObject, parseJsonExact } from './json-literal.js';
import { type Canonical, type Kind, type Sample, sampleJson, sampleValue } from './model.js';
import type { Vars } from './template.js';

/** Kinds tried, in order, when the other side has no rule for a kind. */
const FALLBACK: Partial<Record<Kind, Kind[]>> = {
  samples: ['event', 'state', 'config', 'command'],
  event: ['action', 'state', 'samples'],
  action: ['event', 'command'],
  command: ['action', 'config', 'samples'],
  config: ['command', 'samples'],
  state: ['event', 'samples'],
};

export interface PairSettings {
  prefer?: { samples?: 'one_per_key' | 'one_list' };
  kinds?: { up?: Partial<Record<Kind, Kind>>; down?: Partial<Record<Kind, Kind>> };
}

/** A message without a name cannot use a kind whose every rule needs one. */
function fits(available: ReadonlyMap<Kind, readonly Rule[]>, k: Kind, name: string | undefined): boolean {
  const rules = available.get(k);
  if (rules === undefined) return false;
  if (name !== undefined || k === 'samples') return true;
  for (const r of rules) if (!r.nameCap) return true;
  return false;
}

export class Plan {
  constructor(
    readonly south: CompiledDialect,
    readonly north: CompiledDialect,
    readonly settings: PairSettings,
  ) {}

  /**
   * Orders rules so that the preferred sample shape comes first among the samples rules (a
   * stable sort of those alone, put back in their places); rules of other kinds keep theirs.
   * (A comparator answering 0 between kinds is no order: samples rules with a rule of
   * another kind between them were never compared.)
   */
  preferUp(rules: Rule[]): Rule[] {
    const p = this.settings.prefer?.samples;
    if (!p) return rules;
    const want = p === 'one_per_key';
    const samples = rules
      .filter((r) => r.up === 'samples')
      .sort((a, b) => Number(b.keyCap === want) - Number(a.keyCap === want));
    let i = 0;
    return rules.map((r) => (r.up === 'samples' ? (samples[i++] as Rule) : r));
  }

  /** The kind a message becomes on the other side, given the kinds it can carry. */
  mapKind(
    dir: 'up' | 'down',
    kind: Kind,
    available: ReadonlyMap<Kind, readonly Rule[]>,
    name?: string,
  ): Kind | undefined {
    const forced = this.settings.kinds?.[dir]?.[kind];
    if (forced) return fits(available, forced, name) ? forced : undefined;
    if (fits(available, kind, name)) return kind;
    const fb = FALLBACK[kind];
    if (fb) for (const k of fb) if (fits(available, k, name)) return k;
    return undefined;
  }

  /** North kinds whose downlinks become `southKind` on the south side (mirrors `mapKind`). */
  sourcesOf(
    southKind: Kind,
    northKinds: ReadonlyMap<Kind, readonly Rule[]>,
    southKinds: ReadonlyMap<Kind, readonly Rule[]>,
  ): Kind[] {
    const out: Kind[] = [];
    for (const [nk, rules] of northKinds) {
      const named = rules.some((r) => r.nameCap) ? 'name' : undefined;
      if (this.mapKind('down', nk, southKinds, named) === southKind) out.push(nk);
    }
    return out;
  }
}

export type Encoded =
  | { ok: true; list: PublishOut[]; echo: boolean; reason?: string; rule: Rule }
  | { ok: false; reason: string };

/** Encodes one canonical message with the first usable target rule. */
export function encodeAll(
  msg: Canonical,
  targets: readonly Rule[],
  vars: Readonly<Vars>,
  nowUs: number | undefined,
  peerVersion: number,
  original: Buffer,
): Encoded {
  let rule: Rule | undefined;
  if (msg.kind === 'samples') {
    rule = targets[0];
    // Several points of one key do not fit a one-value shape: a list shape keeps them all
    // (EVRYTHNG history onto a Connector goes to $resource.batch, not to $resource/{key}).
    if (rule && !HISTORY_CODECS.has(rule.codec.name) && repeatsKey(msg.samples))
      rule = targets.find((r) => HISTORY_CODECS.has(r.codec.name)) ?? rule;
  } else {
    const named = msg.name !== undefined;
    for (const r of targets)
      if (r.nameCap === named) {
        rule = r;
        break;
      }
    if (!rule)
      for (const r of targets)
        if (!r.nameCap) {
          rule = r;
          break;
        }
  }
  if (!rule) return { ok: false, reason: 'no_name' };
  const list: PublishOut[] = [];
  const qos = (rule.qos ?? msg.qos) as QoS;
  const dropped = peerVersion < 5 && (msg.contentType !== undefined || msg.userProperties !== undefined);
  if (msg.kind !== 'samples') {
    const topic = rule.tpl.build(vars, undefined, rule.nameCap ? msg.name : undefined);
    if (topic === undefined) return { ok: false, reason: 'unsafe_capture' };
    const payload = rule.codec.samples ? Buffer.alloc(0) : rule.codec.encode(msg, [], vars, nowUs);
    list.push(
      withProps(
        { topic, payload, qos, retain: msg.retain },
        msg,
        rule,
        peerVersion,
        msg.contentType ?? msg.typeHint,
      ),
    );
    return finish(list, rule, dropped);
  }
  const samples = msg.samples ?? [];
  if (samples.length === 0) return { ok: false, reason: 'empty_payload' };
  if ((rule.keyCap || !rule.codec.multiKey) && samples.length === 1) {
    // One sample (a device's single reading, the common case): no grouping needed.
    const s = samples[0] as Sample;
    if (!rule.keyCap && s.key !== rule.fixedKey) return { ok: false, reason: 'no_key' };
    const refused = rule.codec.refuses?.(s.key);
    if (refused) return { ok: false, reason: refused };
    const topic = rule.tpl.build(vars, rule.keyCap ? s.key : undefined);
    if (topic === undefined) return { ok: false, reason: 'unsafe_capture' };
    const payload =
      rule.codec.name === 'value' && s.raw === original
        ? original
        : rule.codec.encode(msg, samples, vars, nowUs);
    list.push(withProps({ topic, payload, qos, retain: msg.retain }, msg, rule, peerVersion, undefined));
    return finish(list, rule, dropped);
  }
  if (rule.keyCap || !rule.codec.multiKey) {
    const groups = new Map<string, Sample[]>();
    for (const s of samples) {
      if (!rule.keyCap && s.key !== rule.fixedKey) continue;
      const g = groups.get(s.key);
      if (g) g.push(s);
      else groups.set(s.key, [s]);
    }
    if (groups.size === 0) return { ok: false, reason: 'no_key' };
    let refused: string | undefined;
    for (const [key, g] of groups) {
      const r = rule.codec.refuses?.(key);
      if (r) {
        refused = r;
        continue;
      }
      const topic = rule.tpl.build(vars, rule.keyCap ? key : undefined);
      if (topic === undefined) return { ok: false, reason: 'unsafe_capture' };
      const single =
        g.length === 1 && samples.length === 1 && rule.codec.name === 'value' && g[0]?.raw === original;
      const payload = single ? original : rule.codec.encode(msg, g, vars, nowUs);
      list.push(withProps({ topic, payload, qos, retain: msg.retain }, msg, rule, peerVersion, undefined));
    }
    if (list.length === 0 && refused) return { ok: false, reason: refused };
    return finish(list, rule, dropped, refused);
  }
  const topic = rule.tpl.build(vars);
  if (topic === undefined) return { ok: false, reason: 'unsafe_capture' };
  const payload = rule.codec.encode(msg, samples, vars, nowUs);
  list.push(withProps({ topic, payload, qos, retain: msg.retain }, msg, rule, peerVersion, undefined));
  return finish(list, rule, dropped);
}

/**
 * Converts `msg` to `kind` and encodes it. Readings taken at different times (a history:
 * EVRYTHNG property lists, Connector `$resource.batch`) going to a shape that holds one value
 * per key (an object, an envelope, an event body) would overwrite one another: they go out as
 * one message per distinct time instead, oldest first, each with its time where the shape has
 * a time field. A shape without one gets them split only when a key repeats (nothing else is
 * lost by merging: the platform takes its receive time either way).
 */
export function encodeAs(
  msg: Canonical,
  kind: Kind,
  targets: readonly Rule[],
  vars: Readonly<Vars>,
  nowUs: number | undefined,
  peerVersion: number,
  original: Buffer,
): Encoded {
  const parts = byTime(msg, kind, targets);
  if (!parts) {
    const bad = convertKind(msg, kind);
    return bad ? { ok: false, reason: bad } : encodeAll(msg, targets, vars, nowUs, peerVersion, original);
  }
  const list: PublishOut[] = [];
  let last: Encoded | undefined;
  let reason: string | undefined;
  for (const part of parts) {
    const bad = convertKind(part, kind);
    if (bad) return { ok: false, reason: bad };
    const e = encodeAll(part, targets, vars, nowUs, peerVersion, original);
    if (!e.ok) return e;
    for (const o of e.list) list.push(o);
    reason ??= e.reason;
    last = e;
  }
  if (!last?.ok) return { ok: false, reason: 'empty_payload' };
  return reason
    ? { ok: true, list, echo: last.echo, reason, rule: last.rule }
    : { ok: true, list, echo: last.echo, rule: last.rule };
}

/** `msg` split into one message per distinct sample time (see `encodeAs`), or undefined to keep it whole. */
function byTime(msg: Canonical, kind: Kind, targets: readonly Rule[]): Canonical[] | undefined {
  const samples = msg.samples;
  if (msg.kind !== 'samples' || !samples || samples.length < 2) return undefined;
  const repeats = repeatsKey(samples);
  let split = repeats;
  if (kind === 'samples') {
    let rule = targets[0];
    if (rule && !HISTORY_CODECS.has(rule.codec.name) && repeats)
      rule = targets.find((r) => HISTORY_CODECS.has(r.codec.name)) ?? rule;
    if (!rule || HISTORY_CODECS.has(rule.codec.name)) return undefined;
    split = repeats || (rule.codec.timed && samples.some((s) => s.ts !== samples[0]?.ts));
  }
  if (!split) return undefined;
  const groups = new Map<number | undefined, Sample[]>();
  for (const s of samples) {
    const g = groups.get(s.ts);
    if (g) g.push(s);
    else groups.set(s.ts, [s]);
  }
  if (groups.size < 2) return undefined;
  // Oldest first; readings without a time (none in a history, in practice) before the others.
  const times = [...groups.keys()].sort((a, b) => (a ?? -Infinity) - (b ?? -Infinity));
  return times.map((t) => ({ ...msg, samples: groups.get(t) as Sample[] }));
}

/** Codecs that carry several timed points of a key in one payload. */
const HISTORY_CODECS: ReadonlySet<string> = new Set(['batch', 'value_list', 'key_value_list']);

function repeatsKey(samples: readonly Sample[] | undefined): boolean {
  if (!samples || samples.length < 2) return false;
  const seen = new Set<string>();
  for (const s of samples) {
    if (seen.has(s.key)) return true;
    seen.add(s.key);
  }
  return false;
}

/** `refused`: the reason some samples were not sent (the others were). */
function finish(list: PublishOut[], rule: Rule, dropped: boolean, refused?: string): Encoded {
  const reason = refused ?? (dropped ? 'properties_dropped' : undefined);
  return reason
    ? { ok: true, list, echo: rule.echo, reason, rule }
    : { ok: true, list, echo: rule.echo, rule };
}

function withProps(
  o: PublishOut,
  msg: Canonical,
  rule: Rule,
  peerVersion: number,
  keptType: string | undefined,
): PublishOut {
  if (peerVersion < 5) return o;
  const ct = keptType ?? rule.codec.contentType;
  if (ct === undefined && msg.userProperties === undefined) return o;
  o.properties = {};
  if (ct !== undefined) o.properties.contentType = ct;
  if (msg.userProperties) o.properties.userProperties = msg.userProperties;
  return o;
}

/**
 * Changes a message's kind in place. Samples become an opaque JSON object body
 * (`{"key": value}`) and a JSON object body becomes samples; returns an error reason.
 */
export function convertKind(msg: Canonical, to: Kind): string | undefined {
  const from = msg.kind;
  msg.kind = to;
  if ((from === 'samples') === (to === 'samples')) return undefined;
  if (from === 'samples') {
    const samples = msg.samples ?? [];
    // One sample (a value per publish, the usual case): its JSON text as received when that is
    // what JSON.stringify would give, without parsing it into a value and back.
    const one = samples.length === 1 ? (samples[0] as Sample) : undefined;
    const v = one && sampleJson(one);
    if (one && v !== undefined) msg.body = Buffer.from(`{${JSON.stringify(one.key)}:${v}}`);
    else {
      // Keys are only its own: a key named __proto__ is kept, not taken as the prototype.
      const o = Object.create(null) as Record<string, unknown>;
      let literals = false;
      for (const s of samples) {
        const v = sampleValue(s);
        o[s.key] = v;
        if (!literals && hasLiterals(v)) literals = true;
      }
      msg.body = Buffer.from(encoded(o, literals));
    }
    // Assigned, not deleted: `delete` turns the message into a slow dictionary-mode object.
    msg.samples = undefined;
    return undefined;
  }
  let o: unknown;
  try {
    o = parseJsonExact(msg.body ?? Buffer.alloc(0));
  } catch {
    return 'bad_payload';
  }
  if (!isJsonObject(o)) return 'bad_payload';
  const samples: Sample[] = Object.entries(o).map(([key, value]) => ({ key, value }));
  if (samples.length === 0) return 'empty_payload';
  msg.samples = samples;
  msg.body = undefined;
  return undefined;
}
