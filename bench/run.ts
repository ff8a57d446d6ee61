/**
 * `npm run bench [-- --quick] [--reps=N] [--paths=a,b] [--scenarios=throughput,latency,devices] [--profile]
 *   [--proxy-v8-flags=a,b]`
 *
 * Starts on loopback: a north mosquitto, the middle hops (TCP forwarder, haproxy when
 * installed, the reference proxy, a bridging mosquitto, the proxy in pass-through and
 * translating Connector → EVRYTHNG), two load generator workers; runs every scenario with
 * the paths alternated and repeated; prints medians and targets; writes JSON to
 * bench/results/. Everything started is stopped at the end, also on error or Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type External,
  haproxyInstalled,
  startHaproxy,
  startMosquitto,
  startMosquittoBridge,
} from './lib/brokers.js';
import { buildForBench, removeBuild, script } from './lib/build.js';
import { Child } from './lib/proc.js';
import { profileTranslate } from './lib/profile.js';
import { medians, type Results, render, targets } from './lib/report.js';
import { PROXY_ROUTES, type ProxyPath, prepareTranslate } from './lib/routes.js';
import {
  devices,
  LATENCY_RATE,
  latency,
  type MemoryBase,
  memoryBase,
  type Path,
  type Rig,
  throughput,
} from './lib/scenarios.js';
import { fmt, push } from './lib/stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args
  .find((a) => a.startsWith('--paths='))
  ?.slice(8)
  .split(',');
const scenarios = args
  .find((a) => a.startsWith('--scenarios='))
  ?.slice(12)
  .split(',');
const want2 = (s: string): boolean => !scenarios || scenarios.includes(s);

const S = quick
  ? {
      reps: 1,
      warmupMs: 300,
      measureMs: 500,
      latWarmupMs: 200,
      latMs: 500,
      devices: 1000,
      deviceRounds: 2,
      // None here: it would add ~4 s to a run that must stay under two minutes, and 1,000
      // connects warm a connect path little (finding 18: V8 was still optimizing it during a
      // second round of 8,000).
      deviceWarmRounds: 0,
      idleMs: 300,
    }
  : {
      reps: 5,
      warmupMs: 600,
      measureMs: 1800,
      latWarmupMs: 400,
      latMs: 2000,
      devices: 8000,
      // Four reconnect rounds: their median, not the mean of two (rates move by 20–50% between
      // rounds on this machine).
      deviceRounds: 5,
      deviceWarmRounds: 1,
      idleMs: 1500,
    };
// `--reps=N`: repetitions per scenario and path (an A/B of two trees wants more than --quick's one).
const repsArg = Number(args.find((a) => a.startsWith('--reps='))?.slice(7));
if (repsArg > 0) S.reps = Math.min(20, Math.floor(repsArg));
// `--proxy-v8-flags=a,b`: V8 flags for the proxy's processes only (a diagnostic, e.g.
// --trace-opt: BENCHMARKS.md finding 20); a run with any says so in its log and JSON.
const PROXY_V8_FLAGS = (args.find((a) => a.startsWith('--proxy-v8-flags='))?.slice(17) ?? '')
  .split(',')
  .filter((f) => f !== '');
const PAYLOAD = 100;
const TRANSLATE: ProxyPath = 'proxy-connector-evrythng';
const UPLINK: ProxyPath = 'proxy-connector-evrythng-uplink';
const PASS: ProxyPath = 'proxy-passthrough';
const GATEWAY: ProxyPath = 'proxy-connector-clearblade';

const externals: External[] = [];
const children: Child[] = [];

async function cleanup(): Promise<void> {
  await Promise.all(children.map((c) => c.stop().catch(() => undefined)));
  await Promise.all(externals.map((e) => e.stop().catch(() => undefined)));
}

async function hop(name: string, file: string, argv: string[]): Promise<Child> {
  const c = new Child(name, script(here, file), argv, {
    gc: true,
    ...(name in PROXY_ROUTES ? { v8Flags: PROXY_V8_FLAGS } : {}),
  });
  children.push(c);
  await c.ready;
  return c;
}

function machine(): Record<string, string | number> {
  const first = (cmd: string, a: string[]): string => {
    try {
      return (
        execFileSync(cmd, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0] ?? ''
      );
    } catch (e) {
      return String((e as { stdout?: string }).stdout ?? '').split('\n')[0] ?? 'not installed';
    }
  };
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    mosquitto: first('mosquitto', ['-h']),
    haproxy: haproxyInstalled() ? first('haproxy', ['-v']) : 'not installed',
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  console.log(`benchmark (${quick ? 'quick' : 'full'}): starting brokers and hops on 127.0.0.1`);
  if (PROXY_V8_FLAGS.length)
    console.log(`the proxy runs with V8 flags ${PROXY_V8_FLAGS.join(' ')}: not its numbers as shipped`);
  const north = await startMosquitto();
  externals.push(north);
  const want = (k: string): boolean => !only || only.includes(k) || k === 'direct';
  const anon = (p: string): Path['identity'] => ({ clientId: `bench-${p}-{i}` });
  const topic = '$resource/temperature';
  const skip = (key: string, why: string): undefined => {
    console.log(`skipping ${key}: ${why}`);
    return undefined;
  };
  /** A hop in a Node process of its own (its port comes once it is ready). */
  const nodeHop = async (
    key: string,
    label: string,
    file: string,
    argv: string[],
    rest: Pick<Path, 'identity' | 'topic' | 'devices' | 'northSession'>,
  ): Promise<Path | undefined> => {
    if (!want(key)) return undefined;
    try {
      const c = await hop(key, file, argv);
      return { key, label, port: (await c.ready).port as number, hopPid: c.pid, hopChild: c, ...rest };
    } catch (e) {
      return skip(key, e instanceof Error ? e.message : String(e));
    }
  };
  /** A hop that is not a Node process of ours (haproxy, mosquitto's bridge); no idle devices. */
  const externalHop = async (
    key: string,
    label: string,
    start: () => Promise<External>,
    id: string,
  ): Promise<Path> => {
    const e = await start();
    externals.push(e);
    return { key, label, port: e.port, hopPid: e.pid, identity: anon(id), topic, devices: false };
  };
  // The translating routes: the proxy with a route from mappings/ and generated credentials.
  const translating = (key: ProxyPath, label: string, devices: boolean): Promise<Path | undefined> => {
    if (!want(key)) return Promise.resolve(undefined);
    const t = prepareTranslate(S.devices, PROXY_ROUTES[key]);
    if (typeof t === 'string') return Promise.resolve(skip(key, t));
    externals.push({ name: `${key}-files`, port: 0, pid: 0, stop: async () => t.cleanup() });
    return nodeHop(key, label, 'proxy-child.ts', [String(north.port), t.route, t.credentials], {
      identity: t.identity,
      topic: t.topic,
      devices,
      // Persistent north sessions are cleared between windows (the uplink-only route's are clean).
      ...(devices && t.northSession ? { northSession: t.northSession } : {}),
    });
  };
  // Every hop starts at once (each waits for its own readiness); the table keeps this order.
  const hops = await Promise.all([
    nodeHop('tcp-forwarder', '2 TCP forwarder (Node pipe)', 'forwarder-child.ts', [String(north.port)], {
      identity: anon('f'),
      topic,
      devices: true,
    }),
    want('haproxy') && haproxyInstalled()
      ? externalHop('haproxy', '2 haproxy tcp mode (1 thread)', () => startHaproxy(north.port), 'h')
      : undefined,
    nodeHop(
      'reference',
      '3 reference proxy (mqtt-packet)',
      'reference-proxy-child.ts',
      [String(north.port)],
      {
        identity: anon('r'),
        topic,
        devices: true,
      },
    ),
    want('mosquitto-bridge')
      ? externalHop(
          'mosquitto-bridge',
          '4 mosquitto bridge (remap)',
          () => startMosquittoBridge(north.port),
          'b',
        )
      : undefined,
    nodeHop(PASS, '5 proxy pass-through', 'proxy-child.ts', [String(north.port), PROXY_ROUTES[PASS]], {
      identity: anon('p'),
      topic,
      devices: true,
    }),
    translating(TRANSLATE, '6 proxy Connector→EVRYTHNG', true),
    // The same device records as the full route; no idle devices (nothing differs from 6 there).
    translating(UPLINK, "6b proxy Connector→EVRYTHNG, uplinks only (like the bridge's `out`)", false),
    translating(GATEWAY, '7 proxy Connector→ClearBlade, the proxy as gateway (one north connection)', true),
  ]);
  const paths: Path[] = [
    {
      key: 'direct',
      label: '1 direct to mosquitto',
      port: north.port,
      identity: anon('d'),
      topic,
      devices: true,
    },
    ...hops.filter((p): p is Path => p !== undefined),
  ];
  const gen = new Child('loadgen', script(here, 'loadgen-worker.ts'));
  const helper = new Child('loadgen-helper', script(here, 'loadgen-worker.ts'));
  children.push(gen, helper);
  await Promise.all([gen.ready, helper.ready]);
  const rig: Rig = {
    gen,
    helper,
    brokerPid: north.pid,
    northPort: north.port,
    subFilters: ['$resource/#', '/thngs/#', '/devices/+/events/#'],
    payloadBytes: PAYLOAD,
  };
  const results: Results = { throughput: {}, latency: {}, devices: {} };
  const order = (rep: number): Path[] => paths.map((_, i) => paths[(i + rep) % paths.length] as Path);
  const log = (s: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(0)}s] ${s}`);

  // Devices first, while each hop is a fresh process: its memory before its first device is
  // what memory per device counts from (messages would grow its heap first). Then a warm-up,
  // not recorded: the connect path of a fresh hop runs unoptimized code at first.
  const devicePaths = want2('devices') ? paths.filter((x) => x.devices) : [];
  const bases = new Map<string, MemoryBase>(
    await Promise.all(devicePaths.map(async (p) => [p.key, await memoryBase(p)] as const)),
  );
  for (const p of devicePaths) await devices(rig, p, quick ? 200 : 400, 0);
  // Round 0: each hop's first S.devices devices (its memory grows to hold them, and V8 is still
  // optimizing its connect path: a restart with the fleet reconnecting). Then S.deviceWarmRounds
  // rounds per hop, not recorded, and the later rounds: the same number again, reconnecting to a
  // hop that has held them before and runs optimized code, as a long-running one does (V8's
  // --trace-opt counted 66 functions still being optimized during a second round of 8,000
  // translating connects, 10 during a third). The JS heap, which takes a forced GC that makes V8
  // optimize the connect path anew, is measured after the first round and the last only
  // (BENCHMARKS.md finding 18).
  for (let rep = 0; want2('devices') && rep < S.deviceRounds; rep++) {
    if (rep === 1) {
      for (const p of devicePaths)
        for (let w = 0; w < S.deviceWarmRounds; w++)
          await devices(rig, p, S.devices, 0, bases.get(p.key), false);
      if (S.deviceWarmRounds) log('connect warm-up done');
    }
    const heap = rep === 0 || rep === S.deviceRounds - 1;
    for (const p of order(rep).filter((x) => x.devices)) {
      const s = await devices(rig, p, S.devices, S.idleMs, bases.get(p.key), heap);
      push(results.devices, p.key, s);
      log(
        `devices ${p.key}: ${s.devices} connected (${s.failed} failed${s.firstError ? `: ${s.firstError}` : ''}), ` +
          `${fmt(s.connectsPerSec)}/s, ` +
          // Without the forced GC a round's RSS still holds earlier rounds' garbage.
          (heap
            ? `${fmt(s.hopBytesPerDevice)} B/device`
            : `RSS ${fmt(s.rssBytesPerDevice)} B/device before GC`),
      );
    }
  }

  // Warm-up, not recorded: the first messages through a fresh process run unoptimized code.
  for (const p of want2('throughput') || want2('latency') ? paths : []) {
    for (const qos of quick ? ([0] as const) : ([0, 1] as const))
      await throughput(rig, p, qos, 4, quick ? 200 : 300, quick ? 200 : 300);
  }
  log('warm-up done');

  for (const qos of want2('throughput') ? ([0, 1] as const) : []) {
    for (const pubs of [4, 100]) {
      const sc = `QoS${qos} ${pubs}pub`;
      const by: Record<string, import('./lib/scenarios.js').ThroughputSample[]> = {};
      results.throughput[sc] = by;
      for (let rep = 0; rep < S.reps; rep++) {
        for (const p of order(rep)) {
          const s = await throughput(rig, p, qos, pubs, S.warmupMs, S.measureMs);
          push(by, p.key, s);
          log(`${sc} ${p.key}: ${fmt(s.msgsPerSec)} msg/s, hop ${fmt(s.hopUsPerMsg, 2)} µs/msg`);
        }
      }
    }
  }
  for (const qos of want2('latency') ? ([0, 1] as const) : []) {
    const sc = `QoS${qos} @${LATENCY_RATE}/s`;
    const by: Record<string, import('./lib/scenarios.js').LatencySample[]> = {};
    results.latency[sc] = by;
    for (let rep = 0; rep < S.reps; rep++) {
      for (const p of order(rep)) {
        const s = await latency(rig, p, qos, LATENCY_RATE, S.latWarmupMs, S.latMs);
        push(by, p.key, s);
        log(`${sc} ${p.key}: p50 ${fmt(s.p50)} µs, p99 ${fmt(s.p99)} µs, n=${s.n}`);
      }
    }
  }
  const m = medians(results);
  const tg = targets(m, TRANSLATE, PASS, UPLINK, GATEWAY);
  const labels = Object.fromEntries(paths.map((p) => [p.key, p.label]));
  // The generator's ceiling on each path: messages per second one core of it sustains
  // (publish + receive + ack) from its CPU per delivered message; headroom is that ceiling
  // over what the path delivered. Headroom above 1 everywhere: the generator was not the limit.
  const ceiling = Object.fromEntries(
    Object.entries(m.throughput).map(([sc, by]) => {
      const per = Object.values(by)
        .map((x) => ({ c: 1e6 / (x.genUsPerMsg ?? Number.NaN), d: x.msgsPerSec ?? Number.NaN }))
        .filter((x) => Number.isFinite(x.c) && Number.isFinite(x.d));
      return [
        sc,
        {
          lowestCeilingMsgsPerSec: Math.min(...per.map((x) => x.c)),
          lowestHeadroom: Math.min(...per.map((x) => x.c / x.d)),
        },
      ];
    }),
  );
  const report = render(m, labels, tg);
  console.log(`\n${report}`);
  console.log(
    '\nLoad generator: messages/s one core of it sustains (lowest over the paths), and its headroom',
  );
  console.log('over the rate each path delivered (lowest; above 1 means the generator was not the limit):');
  console.log(
    Object.entries(ceiling)
      .map(
        ([sc, v]) =>
          `  ${sc}: ${fmt(v.lowestCeilingMsgsPerSec)} msg/s, headroom ${fmt(v.lowestHeadroom, 1)}×`,
      )
      .join('\n'),
  );
  const out = {
    mode: quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine: machine(),
    settings: {
      ...S,
      rate: LATENCY_RATE,
      payloadBytes: PAYLOAD,
      mosquitto: 'max_inflight_messages 100, max_queued_messages 100000',
      ...(PROXY_V8_FLAGS.length ? { proxyV8Flags: PROXY_V8_FLAGS } : {}),
    },
    paths: labels,
    generatorCeiling: ceiling,
    medians: m,
    targets: tg,
    samples: results,
  };
  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${out.mode}-${out.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(join(dir, `latest-${out.mode}.json`), `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwritten ${file} (${out.durationSeconds} s)`);
}

async function entry(): Promise<void> {
  buildForBench(here);
  if (args.includes('--profile')) return profileTranslate(here, quick, PROXY_V8_FLAGS);
  return main();
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`${sig}: stopping everything`);
    void cleanup()
      .then(removeBuild)
      .then(() => process.exit(130));
  });
}
entry()
  .catch((e: unknown) => {
    console.error(`benchmark failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup().then(removeBuild));
