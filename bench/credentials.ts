/**
 * `npm run bench:credentials [-- --records=N]`: start-up cost of a credentials file of N
 * records (default 8,000) in each format the proxy reads: YAML (the baseline, the parser that
 * keeps positions), the same list as JSON, and CSV. Each format is read by a fresh process,
 * three times; the median time and the peak and kept RSS growth are reported.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCredentials } from '../src/routes/credentials.js';

const REPS = 3;

/** Child mode: read one file, print {ms, peak, kept} in bytes of RSS growth. */
async function child(file: string): Promise<void> {
  const r0 = process.memoryUsage.rss();
  let peak = r0;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  const t0 = performance.now();
  const r = await readCredentials(file);
  const ms = performance.now() - t0;
  peak = Math.max(peak, process.memoryUsage.rss());
  clearInterval(timer);
  if (r.errors.length > 0) throw new Error(`${r.errors.length} errors reading ${file}`);
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((res) => setTimeout(res, 100));
  const kept = process.memoryUsage.rss() - r0;
  process.stdout.write(JSON.stringify({ records: r.records.length, ms, peak: peak - r0, kept }));
}

function files(dir: string, n: number): Record<string, string> {
  const list = Array.from({ length: n }, (_, i) => ({
    south: { deviceId: `d${i}`, token: `token-${i}-5b0c7e` },
    north: { thngId: `T${i}`, apiKey: `key-${i}-0123456789abcdef` },
  }));
  const yaml = list
    .map((r) => `- south: ${JSON.stringify(r.south)}\n  north: ${JSON.stringify(r.north)}\n`)
    .join('');
  const csv = `south.deviceId,south.token,north.thngId,north.apiKey\n${list
    .map((r) => `${r.south.deviceId},${r.south.token},${r.north.thngId},${r.north.apiKey}`)
    .join('\n')}\n`;
  const out = {
    'YAML (baseline)': join(dir, 'c.yaml'),
    JSON: join(dir, 'c.json'),
    CSV: join(dir, 'c.csv'),
  };
  writeFileSync(out['YAML (baseline)'], yaml);
  writeFileSync(out.JSON, JSON.stringify(list, null, 1));
  writeFileSync(out.CSV, csv);
  return out;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const mb = (b: number): string => (b / 1048576).toFixed(1);

async function main(): Promise<void> {
  const arg = process.argv.find((a) => a.startsWith('--records='));
  const n = arg ? Number(arg.slice('--records='.length)) : 8000;
  if (!Number.isInteger(n) || n < 1 || n > 200_000) throw new Error('--records must be 1..200000');
  const dir = mkdtempSync(join(tmpdir(), 'mdp-bench-creds-'));
  try {
    const rows: string[][] = [];
    let base = 0;
    for (const [label, file] of Object.entries(files(dir, n))) {
      const runs: Array<{ ms: number; peak: number; kept: number }> = [];
      for (let i = 0; i < REPS; i++) {
        const out = execFileSync(
          process.execPath,
          ['--expose-gc', '--import', 'tsx', import.meta.filename, '--child', file],
          { encoding: 'utf8', timeout: 120_000 },
        );
        runs.push(JSON.parse(out));
      }
      const ms = median(runs.map((r) => r.ms));
      if (!base) base = ms;
      rows.push([
        label,
        ms.toFixed(0),
        (ms / base).toFixed(2),
        mb(median(runs.map((r) => r.peak))),
        mb(median(runs.map((r) => r.kept))),
      ]);
    }
    console.log(`credentials file of ${n} records, median of ${REPS} fresh processes`);
    const head = ['format', 'ms', '÷ YAML', 'peak RSS +MiB', 'kept RSS +MiB'];
    for (const r of [head, ...rows])
      console.log(r.map((c, i) => (i ? c.padStart(14) : c.padEnd(16))).join(''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const at = process.argv.indexOf('--child');
if (at >= 0) await child(process.argv[at + 1] ?? '');
else await main();
