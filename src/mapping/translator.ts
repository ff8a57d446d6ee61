/**
 * A session mapper for known identity variables, without a CONNECT: used by the
 * `translate` command (the migration engineer's dry run), the golden tests and the
 * mapping benchmark. Also decodes one message into the canonical model.
 */
import type { CompiledDialect, Rule } from './dialect.js';
import type { Canonical, Direction } from './model.js';
import type { Plan } from './plan.js';
import { DialectSession, usable } from './session.js';
import { splitTopic, type Vars } from './template.js';

export interface TranslatorOptions {
  nowUs?: () => number;
  southVersion?: number;
  northVersion?: number;
  southScheme?: string;
  northScheme?: string;
}

/** The first south scheme whose variables (and credential) are all known. */
export function southSchemeFor(d: CompiledDialect, vars: Readonly<Vars>): string | undefined {
  const s = d.southAuth.find(
    (x) => x.vars.every((v) => vars[v] !== undefined) && (!x.credential || vars[x.credential] !== undefined),
  );
  return s?.scheme;
}

export function northSchemeFor(d: CompiledDialect, vars: Readonly<Vars>): string | undefined {
  return d.northAuth.find((x) => x.vars.every((v) => vars[v] !== undefined))?.scheme;
}

export function openTranslator(
  plan: Plan,
  vars: Readonly<Vars>,
  opts: TranslatorOptions = {},
): DialectSession {
  const southVersion = opts.southVersion ?? plan.south.versions[plan.south.versions.length - 1] ?? 4;
  return new DialectSession({
    plan,
    vars,
    southScheme: opts.southScheme ?? southSchemeFor(plan.south, vars),
    northScheme: opts.northScheme ?? northSchemeFor(plan.north, vars),
    southVersion,
    northVersion:
      opts.northVersion ??
      (plan.north.versions.includes(southVersion)
        ? southVersion
        : (plan.north.versions[plan.north.versions.length - 1] ?? 4)),
    nowUs: opts.nowUs ?? (() => Date.now() * 1000),
  });
}

/**
 * Decodes one publish of a dialect into the canonical model: `up` reads a device's
 * publish, `down` a platform's. Undefined when no rule matches or the payload is invalid.
 */
export function decodeMessage(
  d: CompiledDialect,
  dir: Direction,
  topic: string,
  payload: Buffer,
  vars: Readonly<Vars>,
  scheme?: string,
): (Canonical & { rule: string }) | undefined {
  const rules: Rule[] = usable(dir === 'up' ? d.upRules : d.downRules, scheme, vars);
  const { levels } = splitTopic(topic);
  for (const r of rules) {
    const caps: Vars = {};
    if (!r.tpl.match(levels, caps) && !r.alts.some((a) => a.match(levels, caps))) continue;
    if (r.identityCaps.some((c) => caps[c] !== vars[c])) return undefined;
    const msg: Canonical & { rule: string } = {
      kind: r[dir] as Canonical['kind'],
      qos: 0,
      retain: false,
      rule: r.name,
    };
    if (r.codec.decode(payload, caps.key ?? r.fixedKey, msg)) return undefined;
    if (caps.name !== undefined) msg.name = caps.name;
    return msg;
  }
  return undefined;
}
