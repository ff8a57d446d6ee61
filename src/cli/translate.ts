/**
 * `mqtt-dialect-proxy translate`: the migration engineer's dry run. Translates one packet
 * (or a recorded session) between two dialects with the shipped (or given) mapping files
 * and prints what the proxy would send. See docs/mapping-reference.md (translate).
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import { parse } from 'yaml';
import type { Outcome, PublishOut, SubscribePlan, UnsubscribePlan } from '../core/contract.js';
import { loadMappings, planFor } from '../mapping/load.js';
import type { PairSettings } from '../mapping/plan.js';
import type { DialectSession } from '../mapping/session.js';
import { openTranslator } from '../mapping/translator.js';
import { parseCredentials } from '../routes/credentials.js';
import { readMappingFiles } from '../routes/files.js';
import { type Io, stdio } from './check.js';

const USAGE = `usage: mqtt-dialect-proxy translate (--south D --north D | --route R) [options]
  --topic T --payload P     one packet (device publish; with --downlink a platform publish)
  --payload-file F          the payload from a file, byte for byte
  --qos 0|1|2 --retain      packet flags (default QoS 0, not retained)
  --downlink                translate north -> south instead of south -> north
  --var NAME=VALUE          identity variable (repeatable): deviceId=12345 thngId=UXYZ ...
  --credentials FILE        take identity variables from a credentials file (the record
                            matching the --var values given, or its only record)
  --session FILE            replay a recorded session (YAML or JSON, see docs/mapping-reference.md)
  --prefer one_per_key|one_list   how samples are published north
  --mqtt5                   the device speaks MQTT 5
  --now MS                  the clock, in ms since the epoch (stable output)
  --dir DIR                 mappings folder (default: mappings)
  --json                    print a JSON array of {topic, payload, qos, retain, properties}
Exit code: 0 translated, 1 dropped or refused (the reason is printed), 2 usage error.
`;

interface Args {
  south?: string;
  north?: string;
  route?: string;
  topic?: string;
  payload?: Buffer;
  payloadFile?: string;
  qos: QoS;
  retain: boolean;
  downlink: boolean;
  vars: Record<string, string>;
  credentials?: string;
  session?: string;
  prefer?: 'one_per_key' | 'one_list';
  mqtt5: boolean;
  now?: number;
  dir: string;
  json: boolean;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args | 'help' {
  const a: Args = {
    qos: 0,
    retain: false,
    downlink: false,
    vars: {},
    mqtt5: false,
    dir: 'mappings',
    json: false,
  };
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined) throw new UsageError(`${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i] as string;
    switch (k) {
      case '-h':
      case '--help':
        return 'help';
      case '--south':
        a.south = value(++i, k);
        break;
      case '--north':
        a.north = value(++i, k);
        break;
      case '--route':
        a.route = value(++i, k);
        break;
      case '--topic':
        a.topic = value(++i, k);
        break;
      case '--payload':
        a.payload = Buffer.from(value(++i, k), 'utf8');
        break;
      case '--payload-file':
        a.payloadFile = value(++i, k);
        break;
      case '--qos': {
        const q = Number(value(++i, k));
        if (q !== 0 && q !== 1 && q !== 2) throw new UsageError('--qos is 0, 1 or 2');
        a.qos = q;
        break;
      }
      case '--retain':
        a.retain = true;
        break;
      case '--downlink':
        a.downlink = true;
        break;
      case '--var': {
        const v = value(++i, k);
        const eq = v.indexOf('=');
        if (eq <= 0) throw new UsageError(`--var takes NAME=VALUE, not '${v}'`);
        a.vars[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      case '--credentials':
        a.credentials = value(++i, k);
        break;
      case '--session':
        a.session = value(++i, k);
        break;
      case '--prefer': {
        const p = value(++i, k);
        if (p !== 'one_per_key' && p !== 'one_list')
          throw new UsageError('--prefer is one_per_key or one_list');
        a.prefer = p;
        break;
      }
      case '--mqtt5':
        a.mqtt5 = true;
        break;
      case '--now':
        a.now = Number(value(++i, k));
        if (!Number.isFinite(a.now)) throw new UsageError('--now takes milliseconds since the epoch');
        break;
      case '--dir':
        a.dir = value(++i, k);
        break;
      case '--json':
        a.json = true;
        break;
      default:
        throw new UsageError(`unknown argument '${k}'`);
    }
  }
  return a;
}

/** One step of a recorded session. */
export interface SessionStep {
  up?: { topic: string; payload?: string; qos?: QoS; retain?: boolean };
  down?: { topic: string; payload?: string; qos?: QoS; retain?: boolean };
  subscribe?: Array<{ topic: string; qos?: QoS }>;
  unsubscribe?: string[];
}

interface SessionFile {
  south?: string;
  north?: string;
  vars?: Record<string, string>;
  steps: SessionStep[];
}

function publish(topic: string, payload: Buffer, qos: QoS, retain: boolean): IPublishPacket {
  return { cmd: 'publish', topic, payload, qos, retain, dup: false };
}

function jsonOut(list: PublishOut[]) {
  return list.map((p) => ({
    topic: p.topic,
    payload: p.payload.toString('utf8'),
    qos: p.qos,
    retain: p.retain,
    properties: p.properties ?? {},
  }));
}

function textOut(side: string, list: PublishOut[]): string {
  return list
    .map((p) => {
      const props =
        p.properties && Object.keys(p.properties).length > 0
          ? ` properties=${JSON.stringify(p.properties)}`
          : '';
      return `${side} ${p.topic} qos=${p.qos} retain=${p.retain}${props}\n  ${p.payload.toString('utf8')}\n`;
    })
    .join('');
}

type StepResult =
  | { kind: 'publish'; side: 'north' | 'south'; outcome: Outcome }
  | { kind: 'subscribe'; plan: SubscribePlan }
  | { kind: 'unsubscribe'; plan: UnsubscribePlan };

async function runStep(t: DialectSession, s: SessionStep, qos: QoS): Promise<StepResult> {
  if (s.up) {
    const p = publish(s.up.topic, Buffer.from(s.up.payload ?? ''), s.up.qos ?? qos, s.up.retain ?? false);
    return { kind: 'publish', side: 'north', outcome: await t.uplink(p) };
  }
  if (s.down) {
    const p = publish(
      s.down.topic,
      Buffer.from(s.down.payload ?? ''),
      s.down.qos ?? qos,
      s.down.retain ?? false,
    );
    return { kind: 'publish', side: 'south', outcome: t.downlink(p) };
  }
  if (s.subscribe) {
    const subscriptions = s.subscribe.map((x) => ({ topic: x.topic, qos: x.qos ?? 0 }));
    return { kind: 'subscribe', plan: t.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions }) };
  }
  if (s.unsubscribe) {
    return {
      kind: 'unsubscribe',
      plan: t.unsubscribe({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: s.unsubscribe }),
    };
  }
  throw new UsageError('a session step needs up, down, subscribe or unsubscribe');
}

async function pickCredentials(file: string, given: Record<string, string>): Promise<Record<string, string>> {
  const { records, errors } = parseCredentials(file, await readFile(file, 'utf8'));
  if (errors.length > 0) throw new UsageError(errors.join('\n'));
  const match = records.filter((r) =>
    Object.entries(given).every(([k, v]) => (r.south[k] ?? r.north[k] ?? v) === v),
  );
  if (match.length !== 1) {
    throw new UsageError(
      `${file}: ${match.length} records match the --var values given; add --var NAME=VALUE to choose one`,
    );
  }
  const r = match[0] as { south: Record<string, string>; north: Record<string, string> };
  return { ...r.south, ...r.north, ...given };
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (e) {
    io.err(`translate: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    io.out(USAGE);
    return 0;
  }
  try {
    return await translate(args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`translate: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

async function translate(a: Args, io: Io): Promise<number> {
  const { files, errors } = await readMappingFiles(a.dir);
  const m = loadMappings(files);
  errors.push(...m.errors);
  if (errors.length > 0) {
    for (const e of errors) io.err(`${e}\n`);
    return 2;
  }
  let session: SessionFile | undefined;
  if (a.session) {
    const text = await readFile(a.session, 'utf8');
    session = parse(text) as SessionFile;
    if (!session || !Array.isArray(session.steps))
      throw new UsageError(`${a.session}: a session file has a 'steps' list`);
  }
  let settings: PairSettings = {};
  let south = a.south ?? session?.south;
  let north = a.north ?? session?.north;
  let credentials = a.credentials;
  const routeVars: Record<string, string> = {};
  if (a.route) {
    const r = m.routes.get(a.route);
    if (!r) throw new UsageError(`no route named '${a.route}' (routes: ${[...m.routes.keys()].join(', ')})`);
    south ??= r.south;
    north ??= r.north;
    settings = r.settings;
    Object.assign(routeVars, r.vars);
    if (!credentials && r.identity.file)
      credentials = isAbsolute(r.identity.file) ? r.identity.file : join(a.dir, r.identity.file);
  }
  if (!south || !north) throw new UsageError('name the dialects with --south and --north (or --route)');
  const s = m.dialects.get(south);
  const n = m.dialects.get(north);
  const known = [...m.dialects.keys()].join(', ');
  if (!s) throw new UsageError(`unknown dialect '${south}' (dialects: ${known})`);
  if (!n) throw new UsageError(`unknown dialect '${north}' (dialects: ${known})`);
  if (a.prefer) settings = { ...settings, prefer: { samples: a.prefer } };
  let vars: Record<string, string> = { ...routeVars, ...session?.vars, ...a.vars };
  if (credentials)
    vars = { ...routeVars, ...(await pickCredentials(credentials, { ...session?.vars, ...a.vars })) };
  const now = a.now;
  const plan = planFor(m, south, north, settings);
  if (!plan) throw new UsageError(`no plan for ${south} -> ${north}`);
  const t = openTranslator(plan, vars, {
    ...(now !== undefined ? { nowUs: () => now * 1000 } : {}),
    southVersion: a.mqtt5 ? 5 : 4,
  });
  let steps: SessionStep[];
  if (session) steps = session.steps;
  else {
    if (a.topic === undefined) throw new UsageError('--topic is required (or --session)');
    const payload = a.payloadFile ? await readFile(a.payloadFile) : (a.payload ?? Buffer.alloc(0));
    const pkt = { topic: a.topic, payload: payload.toString('utf8'), qos: a.qos, retain: a.retain };
    steps = [a.downlink ? { down: pkt } : { up: pkt }];
  }
  const results: StepResult[] = [];
  for (const step of steps) results.push(await runStep(t, step, a.qos));
  t.close();
  return print(a, results, session !== undefined, io);
}

function print(a: Args, results: StepResult[], isSession: boolean, io: Io): number {
  let failed = false;
  const reasons: string[] = [];
  const jsonSteps: unknown[] = [];
  let text = '';
  results.forEach((r, i) => {
    const head = isSession ? `#${i + 1} ` : '';
    if (r.kind === 'publish') {
      const o = r.outcome;
      const list = (r.side === 'north' ? o.north : o.south) ?? [];
      const back = (r.side === 'north' ? o.south : o.north) ?? [];
      if (o.verdict === 'drop' || o.verdict === 'disconnect') {
        failed = true;
        const why = `${head}${o.verdict === 'drop' ? 'dropped' : 'the device would be disconnected'} (${o.reason ?? 'no reason'})`;
        reasons.push(why);
        text += `${why}\n`;
      } else {
        if (o.reason) text += `${head}note: ${o.reason}\n`;
        text += textOut(`${head}${r.side === 'north' ? '→ north' : '→ south'}`, list);
        text += textOut(`${head}${r.side === 'north' ? '← south' : '← north'}`, back);
      }
      jsonSteps.push(
        isSession
          ? { step: i + 1, verdict: o.verdict ?? 'continue', reason: o.reason, [r.side]: jsonOut(list) }
          : jsonOut(list),
      );
    } else if (r.kind === 'subscribe') {
      const granted = r.plan.granted.map((g) => ('code' in g ? g.code : `from north ${g.from.join('+')}`));
      text += `${head}subscribe north ${JSON.stringify(r.plan.north.map((x) => x.topic))} granted ${JSON.stringify(granted)}\n`;
      jsonSteps.push({ step: i + 1, subscribe: r.plan });
    } else {
      text += `${head}unsubscribe north ${JSON.stringify(r.plan.north)}${r.plan.ackOnly ? ' (acknowledged only)' : ''}\n`;
      jsonSteps.push({ step: i + 1, unsubscribe: r.plan });
    }
  });
  if (a.json) {
    io.out(`${JSON.stringify(isSession ? jsonSteps : (jsonSteps[0] ?? []), null, 2)}\n`);
    for (const r of reasons) io.err(`${r}\n`);
  } else io.out(text);
  return failed && !isSession ? 1 : 0;
}
