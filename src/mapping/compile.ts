/**
 * Dialect compiler: a validated dialect document becomes a CompiledDialect. Every semantic
 * problem of the file is reported (unknown captures, shadowed rules, downlinks that cannot
 * be mapped back), each with its position, before anything is used.
 */
import type { QoS } from 'mqtt-packet';
import { PASS_QUIRKS, type Quirks } from '../core/contract.js';
import { compileNorthAuth, compileSouthAuth } from './auth.js';
import { type CodecSpec, compileText, makeCodec, textVars } from './codecs.js';
import type { AllowedFilter, CompiledDialect, FilterLevel, Rule } from './dialect.js';
import type { Kind } from './model.js';
import { validateDetailed } from './schema.js';
import type { Path, Reporter, Source } from './source.js';
import { parseTemplate, type Template } from './template.js';

interface RawRule {
  name: string;
  topic: string;
  also?: string[];
  up?: Kind;
  down?: Kind;
  payload?: CodecSpec;
  join?: string;
  split?: string;
  scheme?: string;
  subscribe?: string;
  qos?: QoS;
  key?: string;
  needs?: string[];
  names?: Record<string, string>;
}

export interface RawDialect {
  dialect: string;
  mqtt?: { versions?: number[]; keepalive_max?: number; max_qos?: QoS; persistent?: boolean };
  escape?: 'none' | 'percent';
  identity?: string[];
  options?: string[];
  topics: RawRule[];
  subscriptions?: {
    automatic?: boolean;
    allowed?: Array<{ filter: string; kinds: Kind[]; needs?: string[] }>;
    granted_qos?: QoS;
    otherwise?: 'failure' | 'silent' | 'disconnect';
  };
  auth?: {
    south?: Array<{
      scheme: string;
      client_id?: string | string[];
      username?: string | string[];
      password?: string | string[] | { jwt: { key: string; audience?: string } };
      common_name?: string;
    }>;
    north?: Array<{
      scheme: string;
      client_id?: string;
      username?: string;
      password?:
        | string
        | { jwt: { key: string; alg?: string; claims?: Record<string, unknown>; ttl?: number } };
    }>;
    anonymous?: 'reject' | 'provision_only';
  };
  gateway?: { key: string; errors?: string };
  quirks?: Record<string, string | number>;
}

const NAMED: ReadonlySet<Kind> = new Set<Kind>(['event', 'command', 'action', 'config', 'resource']);

/** Compiles one dialect source; returns undefined when it has errors (all reported). */
export function compileDialect(src: Source, report: Reporter): CompiledDialect | undefined {
  if (src.value === undefined) return undefined;
  const before = report.errors.length;
  if (validateDetailed('dialect', src, report) === 'invalid') return undefined;
  const d = src.value as RawDialect;
  const identity = new Set(d.identity ?? []);
  const percent = d.escape === 'percent';
  const err = (path: Path, msg: string, hint?: string) => report.error(src, path, msg, hint);

  const checkCaptures = (t: Template, path: Path, rule: RawRule | undefined): void => {
    for (const c of t.captures) {
      if (identity.has(c)) continue;
      if (c === 'key' && rule && (rule.up ?? rule.down) === 'samples') continue;
      if (c === 'name' && rule && (NAMED.has(rule.up as Kind) || NAMED.has(rule.down as Kind))) continue;
      if (!rule && (c === 'key' || c === 'name')) continue;
      err(
        path,
        `unknown capture {${c}} in '${t.source}'`,
        `declare it under 'identity:' or use {key} (samples) or {name} (event, command, action, config)`,
      );
    }
  };

  const rules: Rule[] = [];
  d.topics.forEach((r, i) => {
    const at: Path = ['topics', i];
    const opts = {
      percent,
      ...(r.join !== undefined ? { join: r.join } : {}),
      ...(r.split !== undefined ? { split: r.split } : {}),
      ...(r.names !== undefined ? { names: r.names } : {}),
      // A downlink-only rule joining a multi-level capture builds it as one joined level.
      ...(r.join !== undefined && r.down !== undefined && r.up === undefined ? { flat: true } : {}),
    };
    const tpl = parseTemplate(r.topic, opts);
    if (typeof tpl === 'string') {
      err([...at, 'topic'], `bad topic template: ${tpl}`);
      return;
    }
    checkCaptures(tpl, [...at, 'topic'], r);
    const alts: Template[] = [];
    (r.also ?? []).forEach((a, j) => {
      const t = parseTemplate(a, opts);
      if (typeof t === 'string') {
        err([...at, 'also', j], `bad topic template: ${t}`);
        return;
      }
      if (t.captures.join() !== tpl.captures.join())
        err([...at, 'also', j], `'${a}' must have the same captures as '${r.topic}'`);
      alts.push(t);
    });
    // join: with {name...}, levels are joined on match; a downlink-only rule also builds the
    // name as one joined level (a single-level {name} there: joined on build only). split:
    // the reverse, on build.
    if (r.join !== undefined && !tpl.multi && (r.up || !r.down))
      err(
        [...at, 'join'],
        `'join' needs a multi-level capture such as {name...}`,
        `or a downlink-only rule with a single-level {name}`,
      );
    if (r.join !== undefined && tpl.multi && r.down && r.up) {
      err(
        [...at, 'join'],
        `a rule both ways cannot join a multi-level capture (an uplink keeps the levels, a downlink joins them)`,
        `split the rule: 'up' with join, 'down' with join of its own`,
      );
    }
    if (r.split !== undefined && (!tpl.multi || r.up || !r.down))
      err(
        [...at, 'split'],
        `'split' needs a downlink-only rule with a multi-level capture such as {name...}`,
      );
    const kinds = [r.up, r.down].filter((k): k is Kind => k !== undefined);
    const samples = kinds.includes('samples');
    if (samples && kinds.some((k) => k !== 'samples'))
      err(at, `a rule carrying samples must carry samples both ways`);
    const codec = makeCodec(r.payload ?? {}, samples ? 'value' : 'raw');
    for (const [field, v] of Object.entries(r.payload?.add ?? {}))
      if (typeof v === 'string')
        for (const x of textVars(v))
          if (!identity.has(x))
            err([...at, 'payload', 'add', field], `unknown variable {${x}}`, `declare it under 'identity:'`);
    if (codec.samples !== samples) {
      err(
        [...at, 'payload', 'codec'],
        `codec '${codec.name}' cannot carry ${kinds.join('/')}`,
        samples
          ? 'use value, object, key_value_list, value_list, batch or envelope'
          : `use raw for ${kinds.join('/')}`,
      );
    }
    const keyCap = tpl.captures.includes('key');
    const nameCap = tpl.captures.includes('name');
    if (codec.samples && !codec.multiKey && !keyCap && r.key === undefined) {
      err(
        [...at, 'topic'],
        `codec '${codec.name}' carries one key but '${r.topic}' has no {key}`,
        `add {key} to the topic or a fixed 'key:'`,
      );
    }
    let subscribe: Template | undefined;
    if (r.subscribe !== undefined) {
      const s = parseTemplate(
        r.subscribe.replace(/(^|\/)\+(?=\/|$)/g, '$1{_any}').replace(/(^|\/)#$/, '$1{_rest...}'),
        opts,
      );
      if (typeof s === 'string') err([...at, 'subscribe'], `bad subscription filter: ${s}`);
      else {
        for (const c of s.captures)
          if (c !== '_any' && c !== '_rest' && !tpl.captures.includes(c) && !identity.has(c))
            err([...at, 'subscribe'], `unknown capture {${c}} in the subscription filter`);
        subscribe = s;
      }
    }
    if (r.names !== undefined && !keyCap)
      err([...at, 'names'], `'names' aliases the {key} capture, but '${r.topic}' has none`);
    (r.needs ?? []).forEach((v, j) => {
      if (!identity.has(v))
        err([...at, 'needs', j], `unknown variable '${v}'`, `declare it under 'identity:'`);
    });
    if (rules.some((x) => x.name === r.name)) err([...at, 'name'], `duplicate rule name '${r.name}'`);
    rules.push({
      name: r.name,
      tpl,
      alts,
      up: r.up,
      down: r.down,
      codec,
      keyCap,
      nameCap,
      fixedKey: r.key,
      identityCaps: tpl.captures.filter((c) => identity.has(c)),
      needs: r.needs ?? [],
      keyNames: r.names,
      scheme: r.scheme,
      subscribe,
      qos: r.qos,
      echo: r.up !== undefined && r.down !== undefined,
    });
  });
  checkShadowing(rules, d.topics, 'up', err);
  checkShadowing(rules, d.topics, 'down', err);

  const allowed: AllowedFilter[] = [];
  const downKinds = new Set(rules.map((r) => r.down).filter((k) => k !== undefined));
  (d.subscriptions?.allowed ?? []).forEach((a, i) => {
    const levels: FilterLevel[] = a.filter.split('/').map((l) => {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(l);
      return m?.[1] ? { cap: m[1] } : { lit: l };
    });
    // A level that is not a whole capture is taken literally: braces in it are a typo
    // ({thngId}x, {thngId...}), which would make the filter match nothing.
    if (levels.some((l) => 'lit' in l && /[{}]/.test(l.lit)))
      err(
        ['subscriptions', 'allowed', i, 'filter'],
        `bad filter '${a.filter}': a capture must be a whole level, {name}`,
      );
    for (const l of levels) {
      if ('cap' in l && !identity.has(l.cap) && l.cap !== 'key' && l.cap !== 'name') {
        err(
          ['subscriptions', 'allowed', i, 'filter'],
          `unknown capture {${l.cap}} in '${a.filter}'`,
          `declare it under 'identity:'`,
        );
      }
    }
    a.kinds.forEach((k, j) => {
      if (!downKinds.has(k))
        err(
          ['subscriptions', 'allowed', i, 'kinds', j],
          `no 'down' rule carries kind '${k}': this subscription could never receive it`,
        );
    });
    (a.needs ?? []).forEach((v, j) => {
      if (!identity.has(v))
        err(
          ['subscriptions', 'allowed', i, 'needs', j],
          `unknown variable '${v}'`,
          `declare it under 'identity:'`,
        );
    });
    allowed.push({ source: a.filter, levels, kinds: a.kinds, needs: a.needs ?? [] });
  });

  const south = compileSouthAuth(d, identity, err);
  const north = compileNorthAuth(d, identity, err);
  let gateway: CompiledDialect['gateway'];
  if (d.gateway) {
    const e = d.gateway.errors !== undefined ? parseTemplate(d.gateway.errors) : undefined;
    if (typeof e === 'string') err(['gateway', 'errors'], `bad topic template: ${e}`);
    else
      for (const c of e?.captures ?? [])
        if (!identity.has(c))
          err(['gateway', 'errors'], `unknown variable {${c}}`, `declare it under 'identity:'`);
    for (const v of textVars(d.gateway.key))
      if (!identity.has(v)) err(['gateway', 'key'], `unknown variable {${v}}`);
    gateway = { key: compileText(d.gateway.key), errors: typeof e === 'string' ? undefined : e };
  }
  if (report.errors.length > before) return undefined;
  const q = d.quirks ?? {};
  const quirks: Quirks = Object.freeze({
    ...PASS_QUIRKS,
    sessionPresent: (q.session_present as Quirks['sessionPresent']) ?? 'north',
    cleanSession: q.clean_session === 'ignore' ? 'force_false' : 'pass',
    will: (q.will as Quirks['will']) ?? 'pass',
    retain: (q.retain as Quirks['retain']) ?? 'pass',
    qos2: (q.qos2 as Quirks['qos2']) ?? 'pass',
    maxDownlinkQos: (q.max_downlink_qos as QoS) ?? 2,
    dupWithQos0Disconnect: q.dup_with_qos0 === 'disconnect',
    clientAcksDisconnect: q.client_acks === 'disconnect',
    maxPayloadBytes: (q.max_payload_bytes as number) ?? 0,
    northKeepaliveMax: d.mqtt?.keepalive_max ?? 0,
  });
  return {
    name: d.dialect,
    file: src.file,
    versions: d.mqtt?.versions ?? [3, 4, 5],
    keepaliveMax: d.mqtt?.keepalive_max ?? 0,
    persistent: d.mqtt?.persistent ?? false,
    maxQos: d.mqtt?.max_qos ?? 2,
    identity,
    options: new Set(d.options ?? []),
    percent,
    rules,
    upRules: rules.filter((r) => r.up),
    downRules: rules.filter((r) => r.down),
    subs: {
      automatic: d.subscriptions?.automatic ?? false,
      allowed,
      grantedQos: d.subscriptions?.granted_qos,
      otherwise: d.subscriptions?.otherwise ?? 'failure',
    },
    southAuth: south,
    northAuth: north,
    anonymous: d.auth?.anonymous ?? 'reject',
    gateway,
    quirks,
    maxValueBytes: (q.max_value_bytes as number | undefined) ?? 0,
    unknownTopic: (q.unknown_topic as CompiledDialect['unknownTopic']) ?? 'drop',
    unsubscribe: (q.unsubscribe as CompiledDialect['unsubscribe']) ?? 'pass',
  };
}

/** A rule can never match when an earlier rule of the same direction matches every topic it does. */
function checkShadowing(
  rules: Rule[],
  raw: RawRule[],
  dir: 'up' | 'down',
  err: (p: Path, m: string, h?: string) => void,
): void {
  const list = rules.map((r, i) => ({ r, i })).filter(({ r }) => r[dir] !== undefined);
  for (let b = 0; b < list.length; b++) {
    for (let a = 0; a < b; a++) {
      const A = list[a]?.r;
      const B = list[b];
      if (!A || !B || A.scheme !== B.r.scheme) continue;
      if (covers(A.tpl.source, B.r.tpl.source)) {
        err(
          ['topics', B.i, 'topic'],
          `rule '${B.r.name}' (${dir}) can never match: rule '${A.name}' above matches every topic it does`,
          'put the more specific rule first',
        );
        break;
      }
    }
  }
  void raw;
}

function covers(a: string, b: string): boolean {
  const la = a.split('/');
  const lb = b.split('/');
  const multiA = la[la.length - 1]?.endsWith('...}') ?? false;
  const multiB = lb[lb.length - 1]?.endsWith('...}') ?? false;
  if (multiB && !multiA) return false;
  if (multiA ? lb.length < la.length : la.length !== lb.length) return false;
  for (let i = 0; i < la.length; i++) {
    const x = la[i] as string;
    if (x.startsWith('{')) continue;
    if (x !== lb[i]) return false;
  }
  return true;
}
