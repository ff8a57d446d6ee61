/**
 * One measurement of one path: throughput (flat out), latency (fixed rate) and idle
 * devices (memory and connect rate). Each function opens what it needs through the
 * load generator workers and closes it before returning, even on error.
 */

import os from 'node:os';
import type { Identity } from './mqtt-raw.js';
import { type Child, cpuUs, machineBusyUs, rssBytes, sleep } from './proc.js';

export interface Path {
  key: string;
  label: string;
  /** Where devices connect. */
  port: number;
  /** The middle hop's process (undefined for the direct path). */
  hopPid?: number;
  /** The hop is a Node child that answers 'gc'. */
  hopChild?: Child;
  identity: Identity;
  /**
   * North client id of device i when the route keeps a persistent north session (the
   * Connector route forces clean session 0): the session is cleared after each run, so
   * messages queued for it while offline do not flood the next run.
   */
  northSession?: Identity;
  topic: string;
  /** Include in the idle-devices test (paths with one north connection per device). */
  devices: boolean;
}

export interface Rig {
  /** The load generator: publishers and the subscriber in one process (closed loop). */
  gen: Child;
  /** A second generator process: the idle-devices test spreads its sockets over both. */
  helper: Child;
  brokerPid: number;
  northPort: number;
  subFilters: string[];
  payloadBytes: number;
}

export interface ThroughputSample {
  msgsPerSec: number;
  hopUsPerMsg: number;
  brokerUsPerMsg: number;
  /** Load generator CPU (publishers + subscriber) per delivered message. */
  genUsPerMsg: number;
  delivered: number;
  /** QoS 0 messages given up as lost by the closed loop during the window. */
  lost: number;
  /** PUBLISH packets the publishing devices received back during the window. */
  downlinks: number;
  /** Share of the machine's CPU (all cores) used by processes outside the benchmark. */
  foreignCpuShare: number;
  seconds: number;
}

/** QoS 1 messages a publisher may have unacknowledged (mosquitto's max_inflight_messages too). */
export const ACK_WINDOW = 100;
/** Messages sent and not yet received by the subscriber, over all publishers. */
export const E2E_WINDOW = 2000;
/** The fixed rate of the latency scenario, messages per second over all publishers. */
export const LATENCY_RATE = 5000;

function pubIdentity(path: Path): Identity {
  return path.identity;
}

async function withLoad<T>(
  rig: Rig,
  path: Path,
  qos: 0 | 1,
  publishers: number,
  latency: boolean,
  body: () => Promise<T>,
): Promise<T> {
  try {
    await rig.gen.request({ op: 'sub-open', port: rig.northPort, filters: rig.subFilters, qos, latency });
    await rig.gen.request({
      op: 'pub-open',
      port: path.port,
      count: publishers,
      qos,
      topic: path.topic,
      payloadBytes: rig.payloadBytes,
      identity: pubIdentity(path),
    });
    return await body();
  } finally {
    await drain(rig);
    await rig.gen.request({ op: 'pub-close' }).catch(() => undefined);
    await rig.gen.request({ op: 'sub-close' }).catch(() => undefined);
    await sleep(200);
    if (path.northSession) await clearNorthSessions(rig, path.northSession, publishers);
  }
}

/** Connects with clean session 1 under each device's north client id, which discards its session. */
async function clearNorthSessions(rig: Rig, id: Identity, count: number): Promise<void> {
  const port = rig.northPort;
  await rig.helper
    .request({ op: 'devices-open', port, from: 0, count, concurrency: 50, identity: id })
    .catch(() => undefined);
  await rig.helper.request({ op: 'devices-close' }).catch(() => undefined);
  await sleep(200);
}

/** Waits (at most 10 s) until the subscriber stops receiving: no backlog leaks into the next run. */
async function drain(rig: Rig): Promise<void> {
  let prev = -1;
  for (let i = 0; i < 66; i++) {
    const c = (await rig.gen.request({ op: 'sub-count' }).catch(() => ({ count: prev }))).count as number;
    if (c === prev) return;
    prev = c;
    await sleep(150);
  }
}

interface Snap {
  count: number;
  tUs: number;
  genCpu: number;
  lost: number;
  downlinks: number;
  hop: number;
  broker: number;
  machine: number;
}

async function snap(rig: Rig, path: Path): Promise<Snap> {
  const hop = path.hopPid ? cpuUs(path.hopPid) : 0;
  const broker = cpuUs(rig.brokerPid);
  const machine = machineBusyUs();
  const [s, p] = await Promise.all([
    rig.gen.request({ op: 'sub-count' }),
    rig.gen.request({ op: 'pub-stat' }),
  ]);
  return {
    count: s.count as number,
    tUs: s.tUs as number,
    genCpu: s.cpuUs as number,
    lost: p.lost as number,
    downlinks: p.downlinks as number,
    hop,
    broker,
    machine,
  };
}

export function throughput(
  rig: Rig,
  path: Path,
  qos: 0 | 1,
  publishers: number,
  warmupMs: number,
  measureMs: number,
): Promise<ThroughputSample> {
  return withLoad(rig, path, qos, publishers, false, async () => {
    await rig.gen.request({ op: 'pub-start', mode: 'flat', window: ACK_WINDOW, e2eWindow: E2E_WINDOW });
    await sleep(warmupMs);
    const a = await snap(rig, path);
    await sleep(measureMs);
    const b = await snap(rig, path);
    await rig.gen.request({ op: 'pub-stop' });
    const delivered = b.count - a.count;
    const seconds = (b.tUs - a.tUs) / 1e6;
    const per = (x: number): number => (delivered > 0 ? x / delivered : Number.NaN);
    return {
      msgsPerSec: delivered / seconds,
      hopUsPerMsg: path.hopPid ? per(b.hop - a.hop) : Number.NaN,
      brokerUsPerMsg: per(b.broker - a.broker),
      genUsPerMsg: per(b.genCpu - a.genCpu),
      delivered,
      lost: b.lost - a.lost,
      downlinks: b.downlinks - a.downlinks,
      foreignCpuShare:
        (b.machine - a.machine - (b.hop - a.hop) - (b.broker - a.broker) - (b.genCpu - a.genCpu)) /
        ((b.tUs - a.tUs) * os.cpus().length),
      seconds,
    };
  });
}

export interface LatencySample {
  n: number;
  /** Messages per second received in the window: below the offered rate means the path saturated. */
  deliveredPerSec: number;
  /** Middle hop CPU per offered message at this rate (messages arrive one or two at a time). */
  hopUsPerMsg: number;
  p50: number;
  p99: number;
  max: number;
  sent: number;
}

export function latency(
  rig: Rig,
  path: Path,
  qos: 0 | 1,
  rate: number,
  warmupMs: number,
  measureMs: number,
): Promise<LatencySample> {
  return withLoad(rig, path, qos, 4, true, async () => {
    await rig.gen.request({ op: 'pub-start', mode: 'rate', rate });
    await sleep(warmupMs);
    const hop0 = path.hopPid ? cpuUs(path.hopPid) : Number.NaN;
    const from = (await rig.gen.request({ op: 'sub-count' })).tUs as number;
    await sleep(measureMs);
    const to = (await rig.gen.request({ op: 'sub-count' })).tUs as number;
    const hop1 = path.hopPid ? cpuUs(path.hopPid) : Number.NaN;
    const stop = await rig.gen.request({ op: 'pub-stop' });
    await sleep(300);
    const r = await rig.gen.request({ op: 'sub-latency', fromUs: from, toUs: to });
    return {
      n: r.n as number,
      deliveredPerSec: (r.n as number) / ((to - from) / 1e6),
      hopUsPerMsg: (hop1 - hop0) / ((rate * (to - from)) / 1e6),
      p50: r.p50 as number,
      p99: r.p99 as number,
      max: r.max as number,
      sent: stop.sent as number,
    };
  });
}

export interface DevicesSample {
  devices: number;
  failed: number;
  firstError: string;
  connectsPerSec: number;
  /** CPU per device connect while connecting: the hop, the north broker, the load generator. */
  hopUsPerConnect: number;
  brokerUsPerConnect: number;
  genUsPerConnect: number;
  /** Share of one core the hop used while devices connected (near 1: the hop is the limit). */
  hopCoreShare: number;
  /** Share of the machine (all cores) used by processes outside the benchmark meanwhile. */
  foreignCpuShare: number;
  /** Share of the machine (all cores) busy meanwhile (near 1: the machine is the limit). */
  machineCpuShare: number;
  /**
   * Resident memory per device: the hop's RSS growth, or its JS heap + external growth when
   * that is larger. A hop keeps pages it grew to at start-up (the translating routes parse a
   * credentials file of 8,000 records); devices then fill them and RSS hardly grows, though
   * their objects need that memory all the same.
   */
  hopBytesPerDevice: number;
  /** The hop's RSS growth alone (Node hops can read below their JS heap growth, see above). */
  rssBytesPerDevice: number;
  /** Of which live JS heap after a full GC (Node hops only). */
  heapBytesPerDevice: number;
  /** Of which Buffers and other memory outside the JS heap that V8 knows of. */
  externalBytesPerDevice: number;
}

/** Collects garbage in a Node hop and returns its JS heap and external (Buffer) bytes. */
async function settle(path: Path): Promise<{ heapUsed: number; external: number }> {
  const none = { heapUsed: Number.NaN, external: Number.NaN };
  const m = path.hopChild ? await path.hopChild.request({ op: 'gc' }).catch(() => none) : none;
  await sleep(300);
  return { heapUsed: m.heapUsed as number, external: m.external as number };
}

/** A hop's memory with no device connected: what memory per device is counted from. */
export interface MemoryBase {
  rss: number;
  heapUsed: number;
  external: number;
}

/** The hop's memory now (after a full GC, for a Node hop), before any device has connected. */
export async function memoryBase(path: Path): Promise<MemoryBase> {
  const m = await settle(path);
  return { rss: path.hopPid ? rssBytes(path.hopPid) : 0, ...m };
}

/**
 * Connects `count` idle devices through the path, half from each worker; measures and closes
 * them. Memory per device is counted from `base`, taken once before the path's first devices:
 * a process does not give back memory it has grown to, so a later round measured from its own
 * start would count only what the earlier rounds did not already leave behind.
 *
 * With `heap` false the hop's JS heap is not measured (NaN; RSS alone counts): measuring it
 * takes a forced full GC, after which V8 throws away optimized code that referred to objects
 * the GC freed (`--trace-deopt`: "weak objects"), so the next round would run a re-warming
 * connect path that a long-running process does not (BENCHMARKS.md finding 18).
 */
export async function devices(
  rig: Rig,
  path: Path,
  count: number,
  idleMs: number,
  base?: MemoryBase,
  heap = true,
): Promise<DevicesSample> {
  const before =
    base ??
    (heap
      ? await memoryBase(path)
      : { rss: path.hopPid ? rssBytes(path.hopPid) : 0, heapUsed: Number.NaN, external: Number.NaN });
  const mem0 = { heapUsed: before.heapUsed, external: before.external };
  const hop0 = before.rss;
  const half = Math.floor(count / 2);
  const cpu0 = {
    hop: path.hopPid ? cpuUs(path.hopPid) : Number.NaN,
    broker: cpuUs(rig.brokerPid),
    machine: machineBusyUs(),
    t: performance.now(),
  };
  const parts = [
    { w: rig.gen, from: 0, n: half },
    { w: rig.helper, from: half, n: count - half },
  ];
  try {
    const res = await Promise.all(
      parts.map((p) =>
        p.w.request(
          {
            op: 'devices-open',
            port: path.port,
            from: p.from,
            count: p.n,
            concurrency: 50,
            identity: path.identity,
          },
          180_000,
        ),
      ),
    );
    const cpu1 = {
      hop: path.hopPid ? cpuUs(path.hopPid) : Number.NaN,
      broker: cpuUs(rig.brokerPid),
      machine: machineBusyUs(),
      t: performance.now(),
    };
    const connected = res.reduce((s, r) => s + (r.connected as number), 0);
    const genCpu = res.reduce((s, r) => s + (r.cpuUs as number), 0);
    const wallUs = (cpu1.t - cpu0.t) * 1000;
    const failed = res.reduce((s, r) => s + (r.failed as number), 0);
    const start = Math.min(...res.map((r) => r.startUs as number));
    const end = Math.max(...res.map((r) => r.endUs as number));
    await sleep(idleMs);
    const mem1 = heap ? await settle(path) : { heapUsed: Number.NaN, external: Number.NaN };
    const hop1 = path.hopPid ? rssBytes(path.hopPid) : 0;
    const rss = (hop1 - hop0) / connected;
    // NaN for a hop that is not a Node process (no JS heap), or not measured: then RSS alone counts.
    const js = (mem1.heapUsed - mem0.heapUsed + mem1.external - mem0.external) / connected || 0;
    return {
      devices: connected,
      failed,
      firstError: res.map((r) => r.firstError as string).find((e) => e) ?? '',
      connectsPerSec: connected / ((end - start) / 1e6),
      hopUsPerConnect: connected ? (cpu1.hop - cpu0.hop) / connected : Number.NaN,
      brokerUsPerConnect: connected ? (cpu1.broker - cpu0.broker) / connected : Number.NaN,
      genUsPerConnect: connected ? genCpu / connected : Number.NaN,
      hopCoreShare: (cpu1.hop - cpu0.hop) / wallUs,
      foreignCpuShare:
        (cpu1.machine -
          cpu0.machine -
          (path.hopPid ? cpu1.hop - cpu0.hop : 0) -
          (cpu1.broker - cpu0.broker) -
          genCpu) /
        (wallUs * os.cpus().length),
      machineCpuShare: (cpu1.machine - cpu0.machine) / (wallUs * os.cpus().length),
      hopBytesPerDevice: path.hopPid && connected ? Math.max(rss, js) : Number.NaN,
      rssBytesPerDevice: path.hopPid && connected ? rss : Number.NaN,
      heapBytesPerDevice: connected ? (mem1.heapUsed - mem0.heapUsed) / connected : Number.NaN,
      externalBytesPerDevice: connected ? (mem1.external - mem0.external) / connected : Number.NaN,
    };
  } finally {
    await Promise.all(parts.map((p) => p.w.request({ op: 'devices-close' }).catch(() => undefined)));
    // Time for the hop and the broker to finish closing before the next measurement.
    await sleep(count >= 4000 ? 1000 : 250);
  }
}
