/**
 * Last-resort cleanup: child processes and temp dirs registered here are killed/removed
 * when the test process exits, even if a test forgot or failed before its own cleanup.
 * Tests should still clean up themselves (stop(), cleanup()); this only stops leaks.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let installed = false;

function reapAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const d of dirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', reapAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      reapAll();
      process.exit(130);
    });
  }
}

/** Kill this child at process exit if it is still running; forgotten automatically when it exits. */
export function trackChild(child: ChildProcess): ChildProcess {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Remove this directory at process exit unless `untrackDir` was called first. */
export function trackDir(dir: string): string {
  install();
  dirs.add(dir);
  return dir;
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}
