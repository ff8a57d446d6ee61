/**
 * The rules a session can use, shared by every session that can use the same ones.
 *
 * Which rules of a plan a session uses depends on its south and north auth schemes and on
 * which identity variables it has (not their values): sessions of one route mostly agree on
 * all three, so the filtered lists, the lists by kind and the north kinds behind each south
 * kind are built once per plan and combination, not once per connect. Sets are frozen
 * (read-only to sessions); a plan that is reloaded is a new plan with a cache of its own.
 */
import type { Rule } from './dialect.js';
import type { Kind } from './model.js';
import type { Plan } from './plan.js';
import type { Vars } from './template.js';

export interface RuleSet {
  readonly southUp: readonly Rule[];
  readonly southDown: readonly Rule[];
  readonly northDown: readonly Rule[];
  readonly northUpByKind: ReadonlyMap<Kind, readonly Rule[]>;
  readonly southDownByKind: ReadonlyMap<Kind, readonly Rule[]>;
  readonly northDownByKind: ReadonlyMap<Kind, readonly Rule[]>;
  /** North kinds whose downlinks become each south kind (`plan.sourcesOf`), filled on first use. */
  readonly sources: Map<Kind, readonly Kind[]>;
}

interface PlanRules {
  /** Every identity variable a rule of the plan is bound to or needs, in a fixed order. */
  readonly names: readonly string[];
  /** South scheme → north scheme → which of `names` are defined (bit i: names[i]) → set. */
  readonly sets: Map<string | undefined, Map<string | undefined, Map<number, RuleSet>>>;
  count: number;
}

/** Combinations kept per plan; beyond that a set is built for its session alone. */
export const MAX_RULE_SETS = 256;

const byPlan = new WeakMap<Plan, PlanRules>();

/** Rules usable by a session: scheme matches and every identity capture has a value. */
export function usable(rules: readonly Rule[], scheme: string | undefined, vars: Readonly<Vars>): Rule[] {
  return rules.filter(
    (r) =>
      (r.scheme === undefined || r.scheme === scheme) &&
      r.identityCaps.every((c) => vars[c] !== undefined) &&
      r.needs.every((c) => vars[c] !== undefined),
  );
}

function byKind(rules: readonly Rule[], dir: 'up' | 'down'): Map<Kind, Rule[]> {
  const m = new Map<Kind, Rule[]>();
  for (const r of rules) {
    const k = r[dir];
    if (!k) continue;
    const l = m.get(k);
    if (l) l.push(r);
    else m.set(k, [r]);
  }
  return m;
}

function build(
  plan: Plan,
  southScheme: string | undefined,
  northScheme: string | undefined,
  vars: Readonly<Vars>,
): RuleSet {
  const { south, north } = plan;
  const southDown = usable(south.downRules, southScheme, vars);
  const northDown = usable(north.downRules, northScheme, vars);
  return {
    southUp: Object.freeze(usable(south.upRules, southScheme, vars)),
    southDown: Object.freeze(southDown),
    northDown: Object.freeze(northDown),
    northUpByKind: byKind(plan.preferUp(usable(north.upRules, northScheme, vars)), 'up'),
    southDownByKind: byKind(southDown, 'down'),
    northDownByKind: byKind(northDown, 'down'),
    sources: new Map(),
  };
}

function planRules(plan: Plan): PlanRules {
  let pr = byPlan.get(plan);
  if (!pr) {
    const names = new Set<string>();
    for (const list of [plan.south.upRules, plan.south.downRules, plan.north.upRules, plan.north.downRules])
      for (const r of list) for (const n of [...r.identityCaps, ...r.needs]) names.add(n);
    pr = { names: [...names], sets: new Map(), count: 0 };
    byPlan.set(plan, pr);
  }
  return pr;
}

/** The rule set of a session with these schemes and variables (shared with its like). */
export function ruleSet(
  plan: Plan,
  southScheme: string | undefined,
  northScheme: string | undefined,
  vars: Readonly<Vars>,
): RuleSet {
  const pr = planRules(plan);
  // More variables than bits (no shipped dialect comes near): a set of the session's own.
  if (pr.names.length > 30) return build(plan, southScheme, northScheme, vars);
  let mask = 0;
  for (let i = 0; i < pr.names.length; i++) if (vars[pr.names[i] as string] !== undefined) mask |= 1 << i;
  const known = pr.sets.get(southScheme)?.get(northScheme)?.get(mask);
  if (known) return known;
  const set = build(plan, southScheme, northScheme, vars);
  if (pr.count < MAX_RULE_SETS) {
    let byNorth = pr.sets.get(southScheme);
    if (!byNorth) {
      byNorth = new Map();
      pr.sets.set(southScheme, byNorth);
    }
    let byMask = byNorth.get(northScheme);
    if (!byMask) {
      byMask = new Map();
      byNorth.set(northScheme, byMask);
    }
    byMask.set(mask, set);
    pr.count++;
  }
  return set;
}

/** North kinds whose downlinks become `southKind` for sessions of this rule set. */
export function sourcesOf(plan: Plan, set: RuleSet, southKind: Kind): readonly Kind[] {
  let s = set.sources.get(southKind);
  if (!s) {
    s = Object.freeze(plan.sourcesOf(southKind, set.northDownByKind, set.southDownByKind));
    set.sources.set(southKind, s);
  }
  return s;
}

/** How many rule sets a plan keeps (for tests). */
export function ruleSetCount(plan: Plan): number {
  return byPlan.get(plan)?.count ?? 0;
}
