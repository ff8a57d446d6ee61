/**
 * A real redis-server for tests: a free 127.0.0.1 port, no persistence, its own temp dir.
 *
 *   const redis = await startRedis();
 *   ... new RedisStore({ url: redis.url }) ...
 *   await redis.stop();
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/ports.js';
import { trackChild, trackDir, untrackDir } from '../helpers/reaper.js';

export const REDIS_BIN = '/usr/bin/redis-server';

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:PORT/0 */
  url: string;
  log(): string;
  /** SIGTERM (SIGKILL after 3 s), then removal of the temp dir. Idempotent. */
  stop(): Promise<void>;
}

function spawnRedis(
  port: number,
  dir: string,
): { child: ChildProcess; ready: Promise<void>; log: () => string } {
  const child = trackChild(
    spawn(
      REDIS_BIN,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start within 5000 ms:\n${out}`)),
      5000,
    );
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.length > 100_000) out = out.slice(-50_000);
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with code ${code}:\n${out}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return { child, ready, log: () => out };
}

export async function startRedis(): Promise<RedisServer> {
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'redis-')));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const { child, ready, log } = spawnRedis(port, dir);
    try {
      await ready;
    } catch (err) {
      lastError = err;
      if (child.exitCode === null) child.kill('SIGKILL');
      continue;
    }
    let stopped = false;
    return {
      port,
      url: `redis://127.0.0.1:${port}/0`,
      log,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  untrackDir(dir);
  throw lastError instanceof Error ? lastError : new Error('redis-server could not start');
}
