/**
 * The benchmark report: medians per path and scenario, the targets as ratios to the
 * baselines of the same run, a terminal table and the JSON written to bench/results/.
 */
import os from 'node:os';
import type { DevicesSample, LatencySample, ThroughputSample } from './scenarios.js';
import { fmt, median, table } from './stats.js';

const CORES = os.cpus().length;

export type Series<T> = Record<string, Record<string, T[]>>;

export interface Results {
  throughput: Series<ThroughputSample>;
  latency: Series<LatencySample>;
  devices: Record<string, DevicesSample[]>;
}

export interface Target {
  name: string;
  value: number;
  limit: number;
  /** 'max': value must be ≤ limit; 'min': value must be ≥ limit. */
  kind: 'max' | 'min';
  pass: boolean;
}

function med<T>(xs: T[] | undefined, f: (x: T) => number): number {
  return median((xs ?? []).map(f));
}

export function medians(r: Results) {
  const tp: Record<string, Record<string, Record<string, number>>> = {};
  for (const [sc, byPath] of Object.entries(r.throughput)) {
    tp[sc] = {};
    for (const [p, xs] of Object.entries(byPath)) {
      tp[sc][p] = {
        msgsPerSec: med(xs, (x) => x.msgsPerSec),
        hopUsPerMsg: med(xs, (x) => x.hopUsPerMsg),
        brokerUsPerMsg: med(xs, (x) => x.brokerUsPerMsg),
        genUsPerMsg: med(xs, (x) => x.genUsPerMsg),
        lost: med(xs, (x) => x.lost),
        foreignCpuShare: med(xs, (x) => x.foreignCpuShare),
        downlinksPerMsg: med(xs, (x) => (x.delivered > 0 ? x.downlinks / x.delivered : 0)),
      };
    }
  }
  const lat: Record<string, Record<string, Record<string, number>>> = {};
  for (const [sc, byPath] of Object.entries(r.latency)) {
    lat[sc] = {};
    for (const [p, xs] of Object.entries(byPath)) {
      lat[sc][p] = {
        p50: med(xs, (x) => x.p50),
        p99: med(xs, (x) => x.p99),
        max: med(xs, (x) => x.max),
        deliveredPerSec: med(xs, (x) => x.deliveredPerSec),
        hopUsPerMsg: med(xs, (x) => x.hopUsPerMsg),
      };
    }
  }
  const dev: Record<string, Record<string, number>> = {};
  for (const [p, all] of Object.entries(r.devices)) {
    // Rounds in order: the first is the process's first `devices` devices (it grows its memory
    // to hold them: a restart with the fleet reconnecting); the rest reconnect to a process that
    // already has (churn). Connect rates are given for both; memory over the rounds that measured
    // the JS heap (the first and the last: see `devices`), or all rounds for a hop without one.
    const first = all.slice(0, 1);
    const xs = all.length > 1 ? all.slice(1) : all;
    const withHeap = all.filter((x) => Number.isFinite(x.heapBytesPerDevice));
    const mem = withHeap.length ? withHeap : all;
    dev[p] = {
      devices: med(all, (x) => x.devices),
      failed: med(all, (x) => x.failed),
      firstConnectsPerSec: med(first, (x) => x.connectsPerSec),
      firstHopUsPerConnect: med(first, (x) => x.hopUsPerConnect),
      connectsPerSec: med(xs, (x) => x.connectsPerSec),
      hopUsPerConnect: med(xs, (x) => x.hopUsPerConnect),
      brokerUsPerConnect: med(xs, (x) => x.brokerUsPerConnect),
      genUsPerConnect: med(xs, (x) => x.genUsPerConnect),
      hopCoreShare: med(xs, (x) => x.hopCoreShare),
      foreignCpuShare: med(xs, (x) => x.foreignCpuShare),
      machineCpuShare: med(xs, (x) => x.machineCpuShare),
      hopBytesPerDevice: med(mem, (x) => x.hopBytesPerDevice),
      rssBytesPerDevice: med(mem, (x) => x.rssBytesPerDevice),
      heapBytesPerDevice: med(mem, (x) => x.heapBytesPerDevice),
      externalBytesPerDevice: med(mem, (x) => x.externalBytesPerDevice),
    };
  }
  return { throughput: tp, latency: lat, devices: dev };
}

export type Medians = ReturnType<typeof medians>;

/**
 * The issue's targets, for the translating path (`translate`), pass-through (`pass`) and,
 * when measured, the translating route without downlinks (`uplinkOnly`: one way, like the
 * bridge's `topic # out`). Each translating path gets its own rows, misses included.
 */
export function targets(
  m: Medians,
  translate: string,
  pass: string,
  uplinkOnly?: string,
  gateway?: string,
): Target[] {
  const out: Target[] = [];
  const add = (name: string, value: number, limit: number, kind: 'max' | 'min'): void => {
    if (!Number.isFinite(value)) return;
    out.push({ name, value, limit, kind, pass: kind === 'max' ? value <= limit : value >= limit });
  };
  const translating: Array<[string, string]> = [[translate, 'translating']];
  if (uplinkOnly) translating.push([uplinkOnly, 'translating uplinks-only']);
  if (gateway) translating.push([gateway, 'translating as gateway']);
  for (const [sc, byPath] of Object.entries(m.throughput)) {
    const ref = byPath.reference?.hopUsPerMsg ?? Number.NaN;
    for (const [key, what] of translating)
      add(
        `${sc}: ${what} CPU/msg ÷ reference proxy`,
        (byPath[key]?.hopUsPerMsg ?? Number.NaN) / ref,
        1.3,
        'max',
      );
    add(
      `${sc}: pass-through CPU/msg ÷ reference proxy`,
      (byPath[pass]?.hopUsPerMsg ?? Number.NaN) / ref,
      1.1,
      'max',
    );
    const bridge = byPath['mosquitto-bridge']?.msgsPerSec ?? Number.NaN;
    for (const [key, what] of translating)
      add(
        `${sc}: ${what} msg/s ÷ mosquitto bridge`,
        (byPath[key]?.msgsPerSec ?? Number.NaN) / bridge,
        1,
        'min',
      );
  }
  for (const [sc, byPath] of Object.entries(m.latency)) {
    const direct = byPath.direct?.p50 ?? Number.NaN;
    for (const [key, what] of translating)
      add(`${sc}: ${what} added p50 latency (µs)`, (byPath[key]?.p50 ?? Number.NaN) - direct, 300, 'max');
    add(`${sc}: pass-through added p50 latency (µs)`, (byPath[pass]?.p50 ?? Number.NaN) - direct, 300, 'max');
  }
  for (const p of gateway ? [pass, translate, gateway] : [pass, translate]) {
    add(
      `${p}: resident bytes per idle device`,
      m.devices[p]?.hopBytesPerDevice ?? Number.NaN,
      16 * 1024,
      'max',
    );
    add(
      `${p}: device connects per second, first devices after start`,
      m.devices[p]?.firstConnectsPerSec ?? Number.NaN,
      3000,
      'min',
    );
    add(
      `${p}: device connects per second, reconnecting`,
      m.devices[p]?.connectsPerSec ?? Number.NaN,
      3000,
      'min',
    );
  }
  return out;
}

export function render(m: Medians, labels: Record<string, string>, tgts: Target[]): string {
  const parts: string[] = [];
  const label = (p: string): string => labels[p] ?? p;
  const tpScenarios = Object.keys(m.throughput);
  const tpPaths = [...new Set(tpScenarios.flatMap((s) => Object.keys(m.throughput[s] ?? {})))];
  if (tpPaths.length) {
    parts.push('Delivered messages per second (median), 100-byte payloads');
    parts.push(
      table([
        ['path', ...tpScenarios],
        ...tpPaths.map((p) => [label(p), ...tpScenarios.map((s) => fmt(m.throughput[s]?.[p]?.msgsPerSec))]),
      ]),
    );
    const foreign = tpScenarios.map((sc) => {
      const v = median(Object.values(m.throughput[sc] ?? {}).map((x) => x.foreignCpuShare ?? Number.NaN));
      return `${sc} ${fmt(100 * v)}%`;
    });
    parts.push(`(machine CPU used by processes outside the benchmark, median: ${foreign.join(', ')})`);
    parts.push('\nCPU µs per message in the middle hop (median; broker CPU in brackets)');
    parts.push(
      table([
        ['path', ...tpScenarios],
        ...tpPaths.map((p) => [
          label(p),
          ...tpScenarios.map((s) => {
            const x = m.throughput[s]?.[p];
            return `${fmt(x?.hopUsPerMsg, 2)} [${fmt(x?.brokerUsPerMsg, 2)}]`;
          }),
        ]),
      ]),
    );
  }
  const echoes = tpScenarios.flatMap((sc) =>
    Object.entries(m.throughput[sc] ?? {})
      .filter(([, x]) => (x.downlinksPerMsg ?? 0) > 0)
      .map(([p, x]) => `${label(p)}, ${sc}: ${fmt(x.downlinksPerMsg, 2)} per delivered message`),
  );
  if (echoes.length)
    parts.push(`\nDownlinks received by the publishing devices during the window:\n  ${echoes.join('\n  ')}`);
  const latScenarios = Object.keys(m.latency);
  const latPaths = [...new Set(latScenarios.flatMap((s) => Object.keys(m.latency[s] ?? {})))];
  if (latPaths.length) {
    parts.push(
      '\nLatency at a fixed rate, µs p50 / p99 / max (median of repetitions; 4 publishers) [hop CPU µs per message at that rate]',
    );
    parts.push(
      table([
        ['path', ...latScenarios],
        ...latPaths.map((p) => [
          label(p),
          ...latScenarios.map((s) => {
            const x = m.latency[s]?.[p];
            const rate = Number(/@(\d+)/.exec(s)?.[1] ?? 0);
            const sat =
              (x?.deliveredPerSec ?? 0) < 0.95 * rate ? ` (saturated: ${fmt(x?.deliveredPerSec)}/s)` : '';
            return `${fmt(x?.p50)} / ${fmt(x?.p99)} / ${fmt(x?.max)} [${fmt(x?.hopUsPerMsg, 1)}]${sat}`;
          }),
        ]),
      ]),
    );
  }
  const devPaths = Object.keys(m.devices);
  if (devPaths.length) {
    parts.push('\nIdle connected devices (median)');
    parts.push(
      table([
        [
          'path',
          'devices',
          'failed',
          'connects/s first / again',
          'CPU µs/connect first / again [broker]',
          'hop core / machine / foreign',
          'hop B/device (RSS growth)',
          'JS heap',
          'external',
        ],
        ...devPaths.map((p) => {
          const x = m.devices[p];
          return [
            label(p),
            fmt(x?.devices),
            fmt(x?.failed),
            `${fmt(x?.firstConnectsPerSec)} / ${fmt(x?.connectsPerSec)}`,
            `${Number.isFinite(x?.hopUsPerConnect) ? `${fmt(x?.firstHopUsPerConnect)} / ${fmt(x?.hopUsPerConnect)}` : '-'} [${fmt(x?.brokerUsPerConnect)}]`,
            `${Number.isFinite(x?.hopCoreShare) ? pct(x?.hopCoreShare) : '-'} / ${pct(x?.machineCpuShare)} / ${pct(x?.foreignCpuShare)}`,
            `${fmt(x?.hopBytesPerDevice)} (${fmt(x?.rssBytesPerDevice)})`,
            fmt(x?.heapBytesPerDevice),
            fmt(x?.externalBytesPerDevice),
          ];
        }),
      ]),
    );
    // The generator's own ceiling: connects per second one core of it sustains (CONNECT out,
    // CONNACK in, from its CPU per connect), and its headroom over what each path reached.
    const gen = devPaths
      .map((p) => ({
        c: 1e6 / (m.devices[p]?.genUsPerConnect ?? Number.NaN),
        d: m.devices[p]?.connectsPerSec,
      }))
      .filter((x) => Number.isFinite(x.c) && Number.isFinite(x.d));
    if (gen.length) {
      const lowest = Math.min(...gen.map((x) => x.c));
      const headroom = Math.min(...gen.map((x) => x.c / (x.d ?? Number.NaN)));
      parts.push(
        `Load generator (two processes): ${fmt(lowest)} connects/s per core of it (lowest over the paths), ` +
          `headroom ${fmt(headroom, 1)}× over each path's rate (lowest)`,
      );
    }
    parts.push(
      '\nConnect ceilings at the CPU costs this run measured (reconnect rounds): a Node hop runs its JS on one\n' +
        'thread (its GC threads add some CPU beside it: "hop core" above 100%), and hop, broker and generator\n' +
        'share the machine, so no path goes much faster than the lower of the two here',
    );
    parts.push(
      table([
        ['path', 'hop+broker+gen µs/connect', `${CORES} cores ÷ that`, '1 core ÷ hop µs', 'measured again'],
        ...devPaths.map((p) => {
          const x = m.devices[p];
          const hop = Number.isFinite(x?.hopUsPerConnect) ? (x?.hopUsPerConnect as number) : 0;
          const sum = hop + (x?.brokerUsPerConnect ?? Number.NaN) + (x?.genUsPerConnect ?? Number.NaN);
          return [
            label(p),
            fmt(sum),
            fmt((CORES * 1e6) / sum),
            hop ? fmt(1e6 / hop) : '-',
            fmt(x?.connectsPerSec),
          ];
        }),
      ]),
    );
  }
  if (tgts.length) {
    parts.push('\nTargets');
    parts.push(
      table([
        ['target', 'value', 'limit', 'result'],
        ...tgts.map((t) => [
          t.name,
          fmt(t.value, 2),
          `${t.kind === 'max' ? '≤' : '≥'} ${fmt(t.limit, 2)}`,
          t.pass ? 'pass' : 'MISS',
        ]),
      ]),
    );
  }
  return parts.join('\n');
}

function pct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${Math.round(100 * x)}%`;
}
