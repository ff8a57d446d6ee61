/**
 * Process helpers for the benchmark: CPU time and resident memory from /proc, free
 * loopback ports, forked TypeScript children with a request/response IPC channel.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const TICK_US = 1e6 / 100; // CLK_TCK is 100 on Linux

/** utime + stime of a process, in microseconds (10 ms resolution). */
export function cpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

/** CPU time spent busy by the whole machine (all cores, all processes), in microseconds. */
export function machineBusyUs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return (total - idle) * TICK_US;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves when something accepts TCP connections on the port; bounded in time. */
export async function waitForPort(port: number, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export type Msg = Record<string, unknown>;

/** Garbage collections by kind (minor, major, …): how many, and their milliseconds. */
export type GcStats = Record<string, { count: number; ms: number }>;

/** A forked TypeScript child that answers `{id, ...}` requests with `{id, ok, ...}`. */
export class Child {
  readonly proc: ChildProcess;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (m: Msg) => void; reject: (e: Error) => void }>();
  private exited = false;
  readonly ready: Promise<Msg>;

  constructor(
    readonly name: string,
    script: string,
    args: string[] = [],
    opts: { gc?: boolean; cpuProf?: string; v8Flags?: readonly string[] } = {},
  ) {
    const execArgv = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
    if (opts.gc) execArgv.push('--expose-gc');
    if (opts.v8Flags) execArgv.push(...opts.v8Flags);
    if (opts.cpuProf) execArgv.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProf}`);
    this.proc = fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let readyResolve: (m: Msg) => void = () => {};
    let readyReject: (e: Error) => void = () => {};
    this.ready = new Promise<Msg>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.proc.on('message', (raw) => {
      const m = raw as Msg;
      if (m.ready) {
        readyResolve(m);
        return;
      }
      if (m.fatal) {
        readyReject(new Error(`${name}: ${String(m.fatal)}`));
        return;
      }
      const w = this.waiting.get(m.id as number);
      if (!w) return;
      this.waiting.delete(m.id as number);
      if (m.ok) w.resolve(m);
      else w.reject(new Error(`${name}: ${String(m.error)}`));
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      const err = new Error(`${name} exited (code ${code}, signal ${signal})`);
      readyReject(err);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  request(msg: Msg, timeoutMs = 60000): Promise<Msg> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = ++this.seq;
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.name}: no answer to ${String(msg.op)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ ...msg, id });
    });
  }

  /** Asks the child to exit, then kills it if it has not after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    try {
      this.proc.send({ op: 'exit', id: 0 });
    } catch {
      // channel already closed
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(t);
  }
}

/** Child side: answer requests with a handler; 'exit' ends the process. */
export function serve(handler: (m: Msg) => Promise<Msg> | Msg, onExit?: () => Promise<void>): void {
  process.on('message', async (raw) => {
    const m = raw as Msg;
    if (m.op === 'exit') {
      try {
        await onExit?.();
      } finally {
        process.exit(0);
      }
    }
    try {
      const r = await handler(m);
      process.send?.({ ...r, id: m.id, ok: true });
    } catch (e) {
      process.send?.({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) });
    }
  });
  process.on('disconnect', () => process.exit(0));
}
