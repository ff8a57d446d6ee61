/**
 * Table-driven golden tests: each fixture names a south and a north dialect (the shipped
 * files in mappings/), identity variables and cases: an input packet and the exact packets
 * expected on the other side (or the drop/disconnect reason, or a subscription plan).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { parse } from 'yaml';
import type { Outcome, PublishOut } from '../../src/core/contract.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { openTranslator } from '../../src/mapping/translator.js';
import { shippedMappings } from './shipped.js';

interface Pkt {
  topic: string;
  payload: string;
  qos?: QoS;
  retain?: boolean;
  properties?: IPublishPacket['properties'];
}
interface Case {
  name: string;
  up?: Pkt;
  down?: Pkt;
  out?: Pkt[];
  drop?: string;
  /** Packets sent back to the sender's side (an error answer). */
  back?: Pkt[];
  disconnect?: string;
  reason?: string;
  subscribe?: Array<{ topic: string; qos: QoS }>;
  unsubscribe?: string[];
  plan?: unknown;
  auto?: unknown;
  /** Several cases run in order on one session (subscribe, then downlink). */
  steps?: Case[];
}
interface Fixture {
  south: string;
  north: string;
  vars: Record<string, string>;
  now_us?: number;
  prefer?: { samples?: 'one_per_key' | 'one_list' };
  kinds?: { up?: Record<string, string>; down?: Record<string, string> };
  south_version?: number;
  north_version?: number;
  cases: Case[];
}

const dir = join(import.meta.dirname, 'fixtures');
const mappings = loadMappings(shippedMappings());
assert.deepEqual(mappings.errors, []);

function publish(p: Pkt): IPublishPacket {
  return {
    cmd: 'publish',
    topic: p.topic,
    payload: Buffer.from(p.payload),
    qos: p.qos ?? 0,
    retain: p.retain ?? false,
    dup: false,
    ...(p.properties ? { properties: p.properties } : {}),
  };
}

function shown(list: PublishOut[] | undefined): Pkt[] {
  return (list ?? []).map((o) => ({
    topic: o.topic,
    payload: o.payload.toString('utf8'),
    qos: o.qos,
    retain: o.retain,
    ...(o.properties ? { properties: o.properties } : {}),
  }));
}

for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort()) {
  const fx = parse(readFileSync(join(dir, file), 'utf8')) as Fixture;
  describe(`golden ${file} (${fx.south} → ${fx.north})`, () => {
    const settings = {
      ...(fx.prefer ? { prefer: fx.prefer } : {}),
      ...(fx.kinds ? { kinds: fx.kinds } : {}),
    };
    const plan = planFor(mappings, fx.south, fx.north, settings as never);
    assert.ok(plan, `dialects ${fx.south} and ${fx.north} are shipped`);
    const open = () =>
      openTranslator(plan, fx.vars, {
        nowUs: () => fx.now_us ?? 1_700_000_000_000_000,
        ...(fx.south_version ? { southVersion: fx.south_version } : {}),
        ...(fx.north_version ? { northVersion: fx.north_version } : {}),
      });
    for (const c of fx.cases) {
      test(c.name, async () => {
        const t = open();
        for (const step of c.steps ?? [c]) await runCase(t, step);
      });
    }
  });
}

async function runCase(t: ReturnType<typeof openTranslator>, c: Case): Promise<void> {
  if (c.auto) {
    assert.deepEqual(t.autoSubscribe(), c.auto);
    return;
  }
  if (c.unsubscribe) {
    assert.deepEqual(
      t.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: c.unsubscribe }),
      c.plan,
    );
    return;
  }
  if (c.subscribe) {
    assert.deepEqual(t.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: c.subscribe }), c.plan);
    return;
  }
  const o: Outcome = c.up ? await t.uplink(publish(c.up)) : t.downlink(publish(c.down as Pkt));
  if (c.drop) {
    assert.equal(o.verdict, 'drop');
    assert.equal(o.reason, c.drop);
    assert.deepEqual(shown(c.up ? o.south : o.north), c.back ?? []);
    return;
  }
  if (c.disconnect) {
    assert.equal(o.verdict, 'disconnect');
    assert.equal(o.reason, c.disconnect);
    return;
  }
  assert.equal(o.verdict, 'continue', `translated (reason: ${o.reason})`);
  assert.equal(o.reason, c.reason);
  assert.deepEqual(shown(c.up ? o.north : o.south), c.out);
  assert.deepEqual((c.up ? o.south : o.north) ?? [], [], 'nothing sent back the other way');
}
