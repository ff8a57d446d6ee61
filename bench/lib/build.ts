/**
 * The benchmark runs every forked process (the hops, the proxy, the load generator) from
 * JavaScript compiled by tsc, as `npm start` runs the proxy, not through tsx: tsx's
 * transform wraps closures in a naming helper that costs CPU on hot paths and turns each
 * closure's properties into a dictionary (a few hundred bytes per closure per session).
 * The build goes to bench/results/build-<pid> (git-ignored) so packages resolve from
 * node_modules; one directory per run, so runs started side by side do not delete each
 * other's build. `removeBuild` deletes it at the end of the run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

let root: string | undefined;
let outDir: string | undefined;

/** Compiles src/ and bench/ with the project's tsconfig; false (with a warning) when it did not emit. */
export function buildForBench(benchDir: string): boolean {
  const out = join(benchDir, 'results', `build-${process.pid}`);
  outDir = out;
  rmSync(out, { recursive: true, force: true });
  try {
    execFileSync(
      'npx',
      ['tsc', '-p', 'tsconfig.json', '--outDir', out, '--noEmit', 'false', '--sourceMap', 'false'],
      {
        stdio: 'ignore',
      },
    );
  } catch {
    // Type errors elsewhere in the tree still emit; the check below decides.
  }
  const ok = ['proxy-child.js', 'loadgen-worker.js', 'forwarder-child.js', 'reference-proxy-child.js'].every(
    (f) => existsSync(join(out, 'bench', f)),
  );
  root = ok ? join(out, 'bench') : undefined;
  if (!ok) console.log('tsc did not emit the benchmark children: running them through tsx instead');
  return ok;
}

/** The script to fork for `name` (a bench/*.ts file name): compiled when the build succeeded. */
export function script(benchDir: string, name: string): string {
  return root ? join(root, name.replace(/\.ts$/, '.js')) : join(benchDir, name);
}

/** Deletes this run's build (called once everything it forked has stopped). */
export function removeBuild(): void {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
  outDir = undefined;
}
