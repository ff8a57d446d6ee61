/**
 * `npm run bench:mapping`: the translate path alone (no sockets), in messages per second on
 * one core, against the pass-through path measured in the same run. Each scenario runs a
 * warm-up, then timed rounds bounded in count and time; the best round is reported.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IPublishPacket } from 'mqtt-packet';
import type { Outcome, SessionMapper } from '../src/core/contract.js';
import { EchoScope } from '../src/mapping/echo-scope.js';
import { loadMappings, type MappingFile, planFor } from '../src/mapping/load.js';
import { openTranslator } from '../src/mapping/translator.js';
import { passThroughMapper } from '../src/routes/passthrough.js';

const ROUND_MS = 300;
const ROUNDS = 5;
const MAX_PER_ROUND = 5_000_000;

function files(dir: string): MappingFile[] {
  const out: MappingFile[] = [];
  for (const folder of ['dialects', 'routes', 'pairs']) {
    for (const n of readdirSync(join(dir, folder))) {
      if (n.endsWith('.yaml'))
        out.push({ path: join(folder, n), folder, text: readFileSync(join(dir, folder, n), 'utf8') });
    }
  }
  return out;
}

const m = loadMappings(files(join(import.meta.dirname, '..', 'mappings')));
if (m.errors.length > 0) throw new Error(m.errors.join('\n'));
const VARS = {
  deviceId: '12345',
  token: 't',
  thngId: 'UXYZ',
  apiKey: 'k',
  connectorId: 'c1',
  secret: 'S3',
  gatewayId: 'gw',
  project: 'p',
  region: 'r',
  registry: 'g',
  privateKey: 'pem',
  username: 'u',
  password: 'pw',
  clientId: 'id-1',
};

function session(south: string, north: string): SessionMapper {
  const plan = planFor(m, south, north);
  if (!plan) throw new Error(`no plan ${south} -> ${north}`);
  return openTranslator(plan, VARS, { nowUs: () => 1_700_000_000_000_000, southVersion: 4, northVersion: 4 });
}

function pub(topic: string, payload: string): IPublishPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false };
}

interface Scenario {
  name: string;
  run: () => Outcome | Promise<Outcome>;
  outputs: number;
}

const ctoe = session('connector', 'evrythng');
const etoc = session('evrythng', 'connector');
const atoc = session('akenza', 'clearblade');
const ftoa = session('foxtrackr', 'akenza');
const one = pub('$resource/temp', '23');
const dec = pub('$resource/temp', '21.5');
const big = pub('$resource/count', '12345678901234567890');
const obj = pub('$resource', '{"temp":21.5,"hum":40,"on":true}');
const objBig = pub('$resource', '{"temp":23.10,"hum":40,"count":12345678901234567890}');
const down = pub('/thngs/UXYZ/properties/temp', '[{"value":25,"timestamp":1700000000000}]');
const ev = pub('/up/S3/id/12345/alerts/critical', '{"level":3}');
const fox = pub(
  'foxtrackr/12345/V3.0/bat',
  '{"messageType":1,"deviceId":"12345","version":3,"timeMs":1,"battery":{"level":50}}',
);

const scenarios: Scenario[] = [
  { name: 'pass-through uplink', run: () => passThroughMapper.uplink(one), outputs: 1 },
  { name: 'connector→evrythng $resource/{key} value', run: () => ctoe.uplink(one), outputs: 1 },
  { name: 'connector→evrythng $resource/{key} value 21.5', run: () => ctoe.uplink(dec), outputs: 1 },
  { name: 'connector→evrythng $resource/{key} 20-digit value', run: () => ctoe.uplink(big), outputs: 1 },
  { name: 'connector→evrythng $resource object, 3 keys', run: () => ctoe.uplink(obj), outputs: 3 },
  {
    name: 'connector→evrythng $resource object, 3 keys, 23.10 and 20 digits',
    run: () => ctoe.uplink(objBig),
    outputs: 3,
  },
  { name: 'evrythng→connector property downlink', run: () => ctoe.downlink(down), outputs: 1 },
  { name: 'evrythng→connector property uplink', run: () => etoc.uplink(down), outputs: 1 },
  { name: 'akenza→clearblade subtopic event (raw body)', run: () => atoc.uplink(ev), outputs: 1 },
  { name: 'foxtrackr→akenza envelope', run: () => ftoa.uplink(fox), outputs: 1 },
];

function measure(s: Scenario): { perSec: number; nsPer: number } {
  const check = s.run() as Outcome;
  if (check.verdict !== 'continue' || (check.north ?? check.south ?? []).length !== s.outputs) {
    throw new Error(`${s.name}: unexpected outcome ${JSON.stringify(check.reason ?? check.verdict)}`);
  }
  for (let i = 0; i < 50_000; i++) s.run();
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const deadline = t0 + BigInt(ROUND_MS) * 1_000_000n;
    let n = 0;
    let now = t0;
    while (n < MAX_PER_ROUND) {
      for (let i = 0; i < 1000; i++) s.run();
      n += 1000;
      now = process.hrtime.bigint();
      if (now >= deadline) break;
    }
    const rate = n / (Number(now - t0) / 1e9);
    if (rate > best) best = rate;
  }
  return { perSec: best, nsPer: 1e9 / best };
}

const rows = scenarios.map((s) => ({ s, r: measure(s) }));
const base = rows[0]?.r.perSec ?? 1;
const w = Math.max(...rows.map((x) => x.s.name.length));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
console.log(
  `mapping translate path, one core (node ${process.version}), best of ${ROUNDS} rounds of ${ROUND_MS} ms`,
);
console.log(
  `${'scenario'.padEnd(w)}  ${'msg/s'.padStart(12)}  ${'ns/msg'.padStart(8)}  ${'out/msg'.padStart(7)}  ${'vs pass'.padStart(7)}`,
);
for (const { s, r } of rows) {
  console.log(
    `${s.name.padEnd(w)}  ${fmt(r.perSec).padStart(12)}  ${r.nsPer.toFixed(0).padStart(8)}  ${String(s.outputs).padStart(7)}  ${(r.perSec / base).toFixed(2).padStart(7)}`,
  );
}

// The echo scope's question for each uplink whose topic it has not seen (which north filters
// could send it back), with the north filters of 10 devices and of 10,000 (a foxtrackr login
// serving a fleet holds one or more per device): distinct topics, so its answer cache misses.
function echoScopeNs(filters: number): number {
  const scope = new EchoScope(false);
  for (let i = 0; i < filters; i++) scope.hold(`/thngs/T${i}/properties/+`);
  const topics = Array.from({ length: 4096 }, (_, i) => `/thngs/T${i % filters}/properties/k${i}`);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (const t of topics) scope.covers(t);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / topics.length);
  }
  return best;
}
const scopes = [10, 10_000].map((n) => ({ n, ns: echoScopeNs(n) }));
console.log(
  `echo scope, a topic not seen before: ${scopes.map((x) => `${fmt(x.ns)} ns with ${fmt(x.n)} north filters`).join(', ')}`,
);
