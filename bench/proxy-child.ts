/**
 * The proxy under test, in a process of its own so its CPU is measured apart from the load
 * generator and the broker. Usage (forked by bench/run.ts):
 *   proxy-child.ts NORTH_PORT ROUTE [CREDENTIALS_FILE] [STORE_FILE]
 * ROUTE is "passthrough" or a route name from mappings/routes.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';
import { configWith } from '../src/config/schema.js';
import { createLogger } from '../src/log/logger.js';
import { startProxy } from '../src/proxy.js';
import { type GcStats, serve } from './lib/proc.js';

const [northPort, route, credentials = '', storeFile = ''] = process.argv.slice(2);

/** Garbage collections since the last 'gc-stats' request: count and milliseconds, by kind. */
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
let gcStats: GcStats = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
    const s = gcStats[kind] ?? { count: 0, ms: 0 };
    s.count++;
    s.ms += e.duration;
    gcStats[kind] = s;
  }
}).observe({ entryTypes: ['gc'] });

async function main(): Promise<void> {
  const config = configWith({
    north: { url: `mqtt://127.0.0.1:${northPort}` },
    listen: { host: '127.0.0.1', tcpPort: 0, wsPort: -1, tlsPort: -1, wssPort: -1 },
    metrics: { port: -1 },
    mapping: { route: route ?? 'passthrough', credentials },
    log: { level: 'warn', format: 'json' },
    ...(storeFile ? { store: { kind: 'file' as const, file: storeFile } } : {}),
  });
  const logger = createLogger({ level: 'warn', format: 'json', destination: process.stderr });
  const proxy = await startProxy(config, { logger });
  serve(
    (m) => {
      if (m.op === 'connections') return { count: proxy.connectionCount() };
      if (m.op === 'gc-stats') {
        const r = gcStats;
        gcStats = {};
        return { gc: r };
      }
      if (m.op === 'heap') return { file: writeHeapSnapshot(String(m.file)) };
      if (m.op !== 'gc') return {};
      globalThis.gc?.();
      const u = process.memoryUsage();
      return { heapUsed: u.heapUsed, external: u.external, rss: u.rss };
    },
    () => proxy.close(1000),
  );
  process.send?.({ ready: true, port: proxy.ports.tcp });
}

main().catch((e: unknown) => {
  process.send?.({ fatal: e instanceof Error ? e.message : String(e) });
  setTimeout(() => process.exit(1), 100);
});
