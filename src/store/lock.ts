/**
 * A cross-process lock held as a file created with O_EXCL. The file holds the owner's pid,
 * host name and a random nonce. A lock whose owner process is gone (same host), or that is
 * older than `staleMs`, is taken over: it is broken only after re-reading it and finding
 * the same owner, so two processes that both judge it stale do not remove each other's
 * fresh lock (apart from a window of a few microseconds between that re-read and unlink).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';

export interface LockOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** A lock older than this is taken over even if its owner seems alive (default 30 s). */
  staleMs?: number;
}

export type Release = () => Promise<void>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function acquireLock(lockPath: string, opts: LockOptions = {}): Promise<Release> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const staleMs = opts.staleMs ?? 30_000;
  const owner = `${process.pid}\n${hostname()}\n${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + timeoutMs;
  let wait = 2;
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(lockPath, 'wx', 0o644);
      try {
        await fh.writeFile(owner);
      } finally {
        await fh.close();
      }
      return async () => {
        const current = await readFile(lockPath, 'utf8').catch(() => '');
        if (current === owner) await unlink(lockPath).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await breakIfStale(lockPath, staleMs)) continue;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for the lock ${lockPath}`);
    }
    await sleep(wait + Math.random() * wait);
    wait = Math.min(wait * 2, 50);
    if (attempt > 1_000_000) throw new Error(`could not take the lock ${lockPath}`);
  }
}

async function breakIfStale(lockPath: string, staleMs: number): Promise<boolean> {
  let content: string;
  let mtimeMs: number;
  try {
    content = await readFile(lockPath, 'utf8');
    mtimeMs = (await stat(lockPath)).mtimeMs;
  } catch {
    return true; // gone meanwhile: try again at once
  }
  const [pidText, host] = content.split('\n');
  const pid = Number(pidText);
  const ownerGone = host === hostname() && Number.isInteger(pid) && pid > 0 && !alive(pid);
  // An empty file is a lock being written right now, unless it has been empty for long.
  const tooOld = Date.now() - mtimeMs > staleMs;
  if (!ownerGone && !tooOld) return false;
  const again = await readFile(lockPath, 'utf8').catch(() => undefined);
  if (again !== content) return again === undefined;
  await unlink(lockPath).catch(() => undefined);
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
