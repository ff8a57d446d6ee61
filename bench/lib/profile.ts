/**
 * `npm run bench -- --profile [--paths=KEY] [--connects|--latency]`: runs the translating proxy (or the
 * proxy path KEY of PROXY_ROUTES, e.g. proxy-passthrough, proxy-connector-clearblade)
 * under `node --cpu-prof` with QoS 0 and QoS 1 load (or, with
 * `--connects`, three rounds of 8,000 device connects, each with its connect rate, CPU and GC
 * per 1,000 connects), then prints where its CPU went.
 * With `--heap`: heap snapshots before and after 2,000 idle devices, diffed per device.
 * CPU:
 * self time by function and by source area. The .cpuprofile stays in bench/results/.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMosquitto } from './brokers.js';
import { script } from './build.js';
import { census, diffPerDevice } from './heap.js';
import { Child, type GcStats, sleep } from './proc.js';
import { PROXY_ROUTES, type ProxyPath, prepareTranslate } from './routes.js';
import { devices, LATENCY_RATE, latency, type Path, type Rig, throughput } from './scenarios.js';

const CONNECT_DEVICES = 8000;
const HEAP_DEVICES = 2000;

import { fmt, table } from './stats.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

function area(url: string): string {
  if (!url) return '(native / gc / idle)';
  if (url.includes('/node_modules/')) return `npm:${url.split('/node_modules/').pop()?.split('/')[0] ?? '?'}`;
  if (url.startsWith('node:')) return 'node core';
  const m = /\/(src|bench)\/(.+)$/.exec(url.replace(/^.*\/results\/build(?:-\d+)?\//, '/'));
  return m ? `${m[1]}/${m[2]}` : url;
}

export function summarize(file: string, top = 20): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits || n.callFrame.functionName === '(idle)') continue;
    total += hits;
    const where = area(n.callFrame.url);
    const fn = `${n.callFrame.functionName || '(anonymous)'}  ${where}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + hits);
    byArea.set(where, (byArea.get(where) ?? 0) + hits);
  }
  // Each busy sample charged to the nearest project function on its stack (itself or the
  // library and native code it called): which part of src/ the time is spent for.
  const parent = new Map<number, ProfileNode>();
  for (const n of prof.nodes) {
    for (const c of n.children ?? []) parent.set(c, n);
  }
  const byProjectFn = new Map<string, number>();
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits || n.callFrame.functionName === '(idle)') continue;
    let cur: ProfileNode | undefined = n;
    let guard = 0;
    while (cur && !/\/src\//.test(cur.callFrame.url) && guard++ < 500) cur = parent.get(cur.id);
    const key = cur
      ? `${cur.callFrame.functionName || '(anonymous)'}  ${area(cur.callFrame.url)}`
      : '(no project frame)';
    byProjectFn.set(key, (byProjectFn.get(key) ?? 0) + hits);
  }
  const rows = (m: Map<string, number>): string[][] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, `${fmt((100 * v) / total, 1)}%`]);
  return [
    `busy samples: ${total}`,
    table([['self time by function (busy samples only)', 'share'], ...rows(byFn)]),
    '',
    table([['self time by file / package', 'share'], ...rows(byArea)]),
    '',
    table([
      ['time by nearest src/ function on the stack (incl. library/native callees)', 'share'],
      ...rows(byProjectFn),
    ]),
  ].join('\n');
}

/** Heap snapshots before and after HEAP_DEVICES idle devices connect: what one session keeps. */
async function heapPerDevice(
  gen: Child,
  proxy: Child,
  port: number,
  identity: Path['identity'],
  dir: string,
) {
  const open = (from: number, count: number) =>
    gen.request({ op: 'devices-open', port, from, count, concurrency: 50, identity }, 120_000);
  await open(HEAP_DEVICES, 200); // warm up: lazily built state, compiled code
  await gen.request({ op: 'devices-close' });
  await sleep(1500);
  const a = (await proxy.request({ op: 'heap', file: join(dir, 'before.heapsnapshot') }, 120_000))
    .file as string;
  const r = await open(0, HEAP_DEVICES);
  await sleep(1000);
  const b = (await proxy.request({ op: 'heap', file: join(dir, 'after.heapsnapshot') }, 120_000))
    .file as string;
  await gen.request({ op: 'devices-close' });
  console.log(`${r.connected} idle devices connected (${r.failed} failed)\n`);
  console.log(diffPerDevice(census(a), census(b), r.connected as number));
  console.log(`\nsnapshots: ${a} ${b}`);
}

/** `v8Flags`: for the proxy's process only (`--proxy-v8-flags`). */
export async function profileTranslate(
  here: string,
  quick: boolean,
  v8Flags: readonly string[],
): Promise<void> {
  const key = process.argv.find((a) => a.startsWith('--paths='))?.slice(8) ?? 'proxy-connector-evrythng';
  if (!(key in PROXY_ROUTES))
    throw new Error(`--profile takes one proxy path: ${Object.keys(PROXY_ROUTES).join(', ')}`);
  const route = PROXY_ROUTES[key as ProxyPath];
  const passthrough = route === 'passthrough';
  const connects = process.argv.includes('--connects');
  const heap = process.argv.includes('--heap');
  const atRate = process.argv.includes('--latency');
  const outDir = join(here, 'results', `profile-${Date.now()}`);
  mkdirSync(outDir, { recursive: true });
  const north = await startMosquitto();
  const kids: Child[] = [];
  let setup: ReturnType<typeof prepareTranslate> | undefined;
  try {
    let routeArgs = ['passthrough'];
    let identity: Path['identity'] = { clientId: 'bench-prof-{i}' };
    let topic = '$resource/temperature';
    if (!passthrough) {
      setup = prepareTranslate(connects || heap ? CONNECT_DEVICES : 200, route);
      if (typeof setup === 'string') throw new Error(`cannot profile the translating route: ${setup}`);
      routeArgs = [setup.route, setup.credentials];
      identity = setup.identity;
      topic = setup.topic;
    }
    const proxy = new Child('proxy', script(here, 'proxy-child.ts'), [String(north.port), ...routeArgs], {
      ...(heap ? { gc: true } : { cpuProf: outDir }),
      v8Flags,
    });
    const gen = new Child('loadgen', script(here, 'loadgen-worker.ts'));
    kids.push(proxy, gen);
    const port = (await proxy.ready).port as number;
    await gen.ready;
    const rig: Rig = {
      gen,
      helper: gen,
      brokerPid: north.pid,
      northPort: north.port,
      subFilters: ['$resource/#', '/thngs/#', '/devices/+/events/#'],
      payloadBytes: 100,
    };
    const path: Path = {
      key: 'proxy',
      label: 'proxy',
      port,
      hopPid: proxy.pid,
      identity,
      topic,
      devices: false,
      ...(setup && typeof setup !== 'string' && setup.northSession
        ? { northSession: setup.northSession }
        : {}),
    };
    if (heap) {
      await heapPerDevice(gen, proxy, port, identity, outDir);
      return;
    }
    const ms = quick ? 2000 : 6000;
    for (const qos of atRate ? ([0, 1] as const) : []) {
      const s = await latency(rig, path, qos, LATENCY_RATE, 500, ms);
      console.log(
        `profiled QoS${qos} @${fmt(LATENCY_RATE)}/s: p50 ${fmt(s.p50)} µs, p99 ${fmt(s.p99)} µs, ` +
          `${fmt(s.hopUsPerMsg, 2)} µs/msg in the proxy`,
      );
    }
    for (const qos of connects || atRate ? [] : ([0, 1] as const)) {
      const s = await throughput(rig, path, qos, 4, 500, ms);
      console.log(
        `profiled QoS${qos} 4pub: ${fmt(s.msgsPerSec)} msg/s, ${fmt(s.hopUsPerMsg, 2)} µs/msg in the proxy, ` +
          `${fmt(s.downlinks)} downlinks back to the publishing devices`,
      );
    }
    for (let rep = 0; connects && rep < 3; rep++) {
      await proxy.request({ op: 'gc-stats' });
      const d = await devices(rig, { ...path, hopChild: proxy }, CONNECT_DEVICES, 200);
      const gc = (await proxy.request({ op: 'gc-stats' })).gc as GcStats;
      const per = 1000 / Math.max(d.devices, 1);
      const gcText = Object.entries(gc)
        .map(([k, v]) => `${k} ${fmt(v.count * per, 1)} × ${fmt(v.ms * per, 1)} ms`)
        .join(', ');
      console.log(
        `profiled connects: ${d.devices} devices (${d.failed} failed), ${fmt(d.connectsPerSec)}/s, ` +
          `${fmt(d.hopUsPerConnect)} µs/connect in the proxy; GC per 1,000 connects: ${gcText || 'none'}`,
      );
    }
    await proxy.stop(10000);
    const file = readdirSync(outDir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error('the proxy wrote no .cpuprofile');
    console.log(`\n${summarize(join(outDir, file))}\n\nprofile: ${join(outDir, file)}`);
  } finally {
    await Promise.all(kids.map((k) => k.stop().catch(() => undefined)));
    await north.stop();
    if (setup && typeof setup !== 'string') setup.cleanup();
  }
}

if (process.argv[1]?.endsWith('profile.ts') && process.argv[2]) console.log(summarize(process.argv[2], 25));
