/**
 * The proxy as a child process (the CLI, as operators and containers run it): JSON logs
 * on stdout are read to learn the bound ports; every wait is bounded; the child is
 * reaped at exit if a test forgets it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { trackChild } from '../helpers/reaper.js';

export interface CliProxy {
  child: ChildProcess;
  ports: { tcp?: number; ws?: number; metrics?: number };
  /** Every JSON log record so far. */
  records: Array<Record<string, unknown>>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Wait for a log record matching `pred`. */
  waitForLog(
    pred: (r: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGKILL if still running, and wait for the exit. */
  kill(): Promise<void>;
}

export interface CliStart {
  /** Program and arguments before the proxy's own (default: tsx on src/cli/main.ts). */
  command?: string[];
  args: string[];
  cwd: string;
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export async function startCli(o: CliStart): Promise<CliProxy> {
  const command = o.command ?? [process.execPath, '--import', 'tsx', 'src/cli/main.ts'];
  const child = trackChild(
    spawn(command[0] as string, [...command.slice(1), ...o.args], {
      cwd: o.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let out = '';
  let err = '';
  let partial = '';
  const records: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record
      }
    }
    for (const w of waiters) w();
  });
  child.stderr?.on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      for (const w of waiters) w();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const waitForLog = (pred: (r: Record<string, unknown>) => boolean, timeoutMs = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = (): void => {
        const hit = records.find(pred);
        if (hit) {
          done();
          resolve(hit);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(
            new Error(
              `proxy exited (${child.exitCode ?? child.signalCode}) first; stderr: ${err.slice(0, 2000)}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err.slice(0, 2000)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  const proxy: CliProxy = {
    child,
    ports: {},
    records,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLog,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    const ready = await waitForLog((r) => r['msg'] === 'proxy listening', o.startTimeoutMs ?? 20_000);
    const ports = (ready['ports'] ?? {}) as { tcp?: number; ws?: number };
    proxy.ports = { tcp: ports.tcp, ws: ports.ws, metrics: ready['metrics'] as number | undefined };
  } catch (e) {
    await proxy.kill();
    throw e;
  }
  return proxy;
}

/** Bounded wait for `exited`. */
export function exitWithin(p: CliProxy, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`proxy still running after ${timeoutMs} ms`)), timeoutMs);
    p.exited.then((c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
}

/** GET a URL's body, bounded. */
export async function httpText(url: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}
