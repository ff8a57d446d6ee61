/**
 * Generated coverage of the shipped dialects:
 * - round trips: for every rule of every dialect, in each direction it declares,
 *   canonical → topic+payload → canonical → topic+payload is the identity;
 * - pairs: for every ordered pair of dialects and every kind both carry in a direction,
 *   a message translated across arrives with the same meaning (same kind and content).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import type { CompiledDialect, Rule } from '../../src/mapping/dialect.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import type { Canonical, Direction, Kind } from '../../src/mapping/model.js';
import { sampleValue } from '../../src/mapping/model.js';
import { encodeAll } from '../../src/mapping/plan.js';
import { usable } from '../../src/mapping/session.js';
import {
  decodeMessage,
  northSchemeFor,
  openTranslator,
  southSchemeFor,
} from '../../src/mapping/translator.js';
import { shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const VARS = {
  deviceId: 'dev1',
  token: 'tok',
  password: 'pw',
  thngId: 'T1',
  apiKey: 'KEY',
  project: 'p1',
  connectorId: 'c1',
  secret: 'S3',
  privateKey: 'PEM',
  gatewayId: 'gw1',
  region: 'r1',
  registry: 'reg',
  deviceJwt: 'JWT',
  username: 'u',
  clientId: 'id-x-01',
  // EVRYTHNG scopes: the key's product, collection, batch and account (account-wide topics).
  productId: 'P1',
  collectionId: 'C1',
  batchId: 'B1',
  account: 'acc1',
};
const NOW = 1_700_000_000_000_000;
// A sample key no dialect aliases (foxtrackr reads its temp topic as the property temperature).
const FILL: Record<string, string> = { ...VARS, key: 'humidity', name: 'alerts' };

function sampleMsg(kind: Kind, rule: Rule): Canonical {
  if (kind === 'samples') {
    const key = rule.keyCap ? 'humidity' : (rule.fixedKey ?? 'humidity');
    const samples =
      rule.codec.name === 'value' ? [{ key, value: 23 }] : [{ key, value: { c: 21.5 }, ts: NOW }];
    return { kind, samples, qos: 1, retain: false };
  }
  const msg: Canonical = { kind, body: Buffer.from('{"a":1}'), qos: 1, retain: false };
  if (rule.nameCap) msg.name = 'alerts';
  return msg;
}

/** What a message means, independent of topic and encoding. */
function meaning(msg: Canonical): unknown {
  if (msg.kind === 'samples') {
    return { samples: (msg.samples ?? []).map((s) => ({ key: s.key, value: sampleValue(s) })) };
  }
  return { name: msg.name, body: msg.body?.toString('utf8') };
}

function rulesOf(d: CompiledDialect, dir: Direction): Rule[] {
  const scheme = dir === 'up' ? southSchemeFor(d, VARS) : northSchemeFor(d, VARS);
  return usable(dir === 'up' ? d.upRules : d.downRules, scheme, VARS);
}

describe('round trips through the canonical model are the identity', () => {
  for (const d of m.dialects.values()) {
    for (const dir of ['up', 'down'] as const) {
      for (const rule of (dir === 'up' ? d.upRules : d.downRules).filter((r) =>
        r.identityCaps.every((c) => c in VARS),
      )) {
        test(`${d.name} ${dir} ${rule.name} (${rule[dir]})`, () => {
          const msg = sampleMsg(rule[dir] as Kind, rule);
          const first = encodeAll(msg, [rule], VARS, NOW, 4, Buffer.alloc(0));
          assert.ok(first.ok, `encodes: ${first.ok ? '' : first.reason}`);
          const pub = first.list[0];
          assert.ok(pub);
          const back = decodeMessage(d, dir, pub.topic, pub.payload, VARS, rule.scheme);
          assert.ok(back, `${pub.topic} decodes`);
          assert.equal(back.rule, rule.name);
          assert.equal(back.kind, rule[dir]);
          assert.deepEqual(meaning(back), meaning(msg));
          const again = encodeAll(back, [rule], VARS, NOW, 4, pub.payload);
          assert.ok(again.ok);
          assert.equal(again.list[0]?.topic, pub.topic);
          assert.equal(again.list[0]?.payload.toString('utf8'), pub.payload.toString('utf8'));
        });
      }
    }
  }
});

function publish(topic: string, payload: Buffer): IPublishPacket {
  return { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false };
}

describe('every pair of shipped dialects carries every kind both declare', () => {
  const names = [...m.dialects.keys()];
  for (const s of names) {
    for (const n of names) {
      if (s === n) continue;
      const south = m.dialects.get(s) as CompiledDialect;
      const north = m.dialects.get(n) as CompiledDialect;
      const plan = planFor(m, s, n);
      assert.ok(plan);
      for (const dir of ['up', 'down'] as const) {
        const from = dir === 'up' ? rulesOf(south, 'up') : rulesOf(north, 'down');
        const to = dir === 'up' ? rulesOf(north, 'up') : rulesOf(south, 'down');
        const kinds = [...new Set(from.map((r) => r[dir] as Kind))].filter((k) =>
          to.some((r) => r[dir] === k),
        );
        for (const kind of kinds) {
          if (kind === 'attach' || kind === 'detach' || kind === 'provision' || kind === 'content') continue;
          // A named rule when there is one: the other side may need the name.
          const rule = (from.find((r) => r[dir] === kind && r.nameCap) ??
            from.find((r) => r[dir] === kind)) as Rule;
          test(`${s} → ${n} ${dir} ${kind}`, async () => {
            const t = openTranslator(plan, VARS, { nowUs: () => NOW, southVersion: 4, northVersion: 4 });
            const msg = sampleMsg(kind, rule);
            const enc = encodeAll(msg, [rule], VARS, NOW, 4, Buffer.alloc(0));
            assert.ok(enc.ok);
            const input = enc.list[0];
            assert.ok(input);
            if (dir === 'down' && !south.subs.automatic) {
              const filters = south.subs.allowed.map((a) =>
                a.levels.map((l) => ('lit' in l ? l.lit : (FILL[l.cap] ?? 'x'))).join('/'),
              );
              t.subscribe({
                cmd: 'subscribe',
                messageId: 1,
                subscriptions: filters.map((f) => ({ topic: f, qos: 1 })),
              });
            }
            const o =
              dir === 'up'
                ? await t.uplink(publish(input.topic, input.payload))
                : t.downlink(publish(input.topic, input.payload));
            assert.equal(o.verdict, 'continue', `translated (${o.reason})`);
            const outs = (dir === 'up' ? o.north : o.south) ?? [];
            assert.ok(outs.length > 0);
            const target = dir === 'up' ? north : south;
            const scheme = dir === 'up' ? northSchemeFor(north, VARS) : southSchemeFor(south, VARS);
            const got = outs.map((p) => decodeMessage(target, dir, p.topic, p.payload, VARS, scheme));
            for (const g of got) assert.equal(g?.kind, kind, 'same kind on the other side');
            if (kind === 'samples') {
              const all = got.flatMap((g) => (g ? (meaning(g) as { samples: unknown[] }).samples : []));
              assert.deepEqual(all, (meaning(msg) as { samples: unknown[] }).samples);
            } else {
              assert.equal(got.length, 1);
              assert.deepEqual(meaning(got[0] as Canonical), meaning(msg));
            }
          });
        }
      }
    }
  }
});
