/**
 * Rule sets shared by sessions (src/mapping/rule-set.ts): for every shipped route plan and
 * random combinations of schemes and identity variables, the shared set holds exactly the
 * rules filtered for the session itself, in the same order; sessions that differ only in
 * variable values share one set, others do not; a plan keeps a bounded number of sets; and
 * what sessions keep of their own (subscriptions, reference counts) stays their own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Rule } from '../../src/mapping/dialect.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { Plan } from '../../src/mapping/plan.js';
import { MAX_RULE_SETS, ruleSet, ruleSetCount, sourcesOf, usable } from '../../src/mapping/rule-set.js';
import { DialectSession } from '../../src/mapping/session.js';
import type { Vars } from '../../src/mapping/template.js';
import { prng } from '../unit/kit.js';
import { shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const plans: Array<[string, Plan]> = [...m.routes].flatMap(([name, r]) => (r.plan ? [[name, r.plan]] : []));

function names(plan: Plan): string[] {
  const out = new Set<string>();
  for (const l of [plan.south.upRules, plan.south.downRules, plan.north.upRules, plan.north.downRules])
    for (const r of l) for (const n of [...r.identityCaps, ...r.needs]) out.add(n);
  return [...out];
}

function schemes(rules: readonly Rule[]): Array<string | undefined> {
  return [undefined, ...new Set(rules.flatMap((r) => (r.scheme === undefined ? [] : [r.scheme])))];
}

const ruleNames = (l: readonly Rule[] | undefined) => (l ?? []).map((r) => r.name);

describe('shared rule sets', () => {
  it('every shipped route has a plan to check', () => {
    assert.ok(plans.length >= 8, `${plans.length} plans`);
  });

  for (const [name, plan] of plans) {
    it(`${name}: each set equals the session's own filtering; one set per scheme and variable combination`, () => {
      const rand = prng(name.length * 7919);
      const vs = names(plan);
      const southSchemes = schemes([...plan.south.upRules, ...plan.south.downRules]);
      const northSchemes = schemes([...plan.north.upRules, ...plan.north.downRules]);
      const seen = new Map<string, object>();
      for (let i = 0; i < 200; i++) {
        const vars: Vars = {};
        const defined: string[] = [];
        for (const v of vs)
          if (rand() < 0.6) {
            vars[v] = `${v}-${i}`;
            defined.push(v);
          }
        const ss = southSchemes[Math.floor(rand() * southSchemes.length)];
        const ns = northSchemes[Math.floor(rand() * northSchemes.length)];
        const set = ruleSet(plan, ss, ns, vars);
        assert.deepEqual(ruleNames(set.southUp), ruleNames(usable(plan.south.upRules, ss, vars)));
        assert.deepEqual(ruleNames(set.southDown), ruleNames(usable(plan.south.downRules, ss, vars)));
        assert.deepEqual(ruleNames(set.northDown), ruleNames(usable(plan.north.downRules, ns, vars)));
        const up = plan.preferUp(usable(plan.north.upRules, ns, vars));
        assert.deepEqual(
          [...set.northUpByKind.values()].flat().map((r) => r.name),
          [...new Set(up.filter((r) => r.up).map((r) => r.up))].flatMap((k) =>
            up.filter((r) => r.up === k).map((r) => r.name),
          ),
        );
        for (const [k, l] of set.southDownByKind)
          assert.deepEqual(ruleNames(l), ruleNames(set.southDown.filter((r) => r.down === k)));
        for (const [k, l] of set.northDownByKind)
          assert.deepEqual(ruleNames(l), ruleNames(set.northDown.filter((r) => r.down === k)));
        for (const k of set.southDownByKind.keys())
          assert.deepEqual(
            sourcesOf(plan, set, k),
            plan.sourcesOf(k, set.northDownByKind, set.southDownByKind),
          );
        assert.ok(Object.isFrozen(set.southUp) && Object.isFrozen(set.northDown));
        const key = `${ss}|${ns}|${defined.join()}`;
        const before = seen.get(key);
        if (before) assert.equal(set, before, 'same schemes and variables: the same set');
        else {
          for (const other of seen.values()) assert.notEqual(set, other);
          seen.set(key, set);
        }
      }
      assert.equal(ruleSetCount(plan), seen.size);
    });
  }

  it('a plan keeps at most MAX_RULE_SETS sets; beyond that sets are still correct', () => {
    const plan = planFor(m, 'evrythng', 'evrythng');
    assert.ok(plan);
    for (let i = 0; i < MAX_RULE_SETS + 20; i++) {
      const set = ruleSet(plan, `scheme-${i}`, undefined, {});
      assert.deepEqual(ruleNames(set.southUp), ruleNames(usable(plan.south.upRules, `scheme-${i}`, {})));
    }
    assert.equal(ruleSetCount(plan), MAX_RULE_SETS);
  });
});

describe('what a session keeps stays its own', () => {
  const plan = planFor(m, 'evrythng', 'evrythng');
  const session = (thngId: string) => {
    assert.ok(plan);
    return new DialectSession({
      plan,
      vars: { apiKey: 'NORTH', thngId },
      southScheme: 'api_key',
      northScheme: 'api_key',
      southVersion: 4,
      northVersion: 4,
      nowUs: () => 1_700_000_000_000_000,
    });
  };

  it('subscriptions and north references of one session are not seen by another sharing its rules', () => {
    const a = session('T1');
    const b = session('T1');
    const c = session('T2');
    const topic = '/thngs/T1/properties/temperature';
    const sub = a.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
    assert.equal(sub.north.length, 1);
    assert.deepEqual(b.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] }).north, []);
    assert.deepEqual(c.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] }).north, []);
    const down = {
      cmd: 'publish' as const,
      topic: sub.north[0]?.topic ?? '',
      payload: Buffer.from('[{"key":"temperature","value":21}]'),
      qos: 1 as const,
      retain: false,
      dup: false,
    };
    assert.equal(a.downlink(down).verdict, 'continue');
    assert.equal(b.downlink(down).verdict, 'drop', 'b never subscribed');
    assert.deepEqual(a.unsubscribe({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: [topic] }).north, [
      sub.north[0]?.topic,
    ]);
    assert.equal(a.downlink(down).verdict, 'drop', 'a unsubscribed');
    a.close();
    b.close();
    c.close();
  });
});

describe('Plan.preferUp', () => {
  it('puts the preferred samples shape first even when a rule of another kind lies between', () => {
    const r = (name: string, up: string, keyCap: boolean) => ({ name, up, keyCap }) as unknown as Rule;
    const rules = [
      r('object', 'samples', false),
      r('event', 'event', false),
      r('list', 'samples', false),
      r('state', 'state', false),
      r('per-key', 'samples', true),
    ];
    const dialect = plans[0]?.[1].south;
    assert.ok(dialect);
    const names = (p: 'one_per_key' | 'one_list') =>
      new Plan(dialect, dialect, { prefer: { samples: p } }).preferUp(rules).map((x) => x.name);
    assert.deepEqual(names('one_per_key'), ['per-key', 'event', 'object', 'state', 'list']);
    assert.deepEqual(names('one_list'), ['object', 'event', 'list', 'state', 'per-key']);
  });
});
