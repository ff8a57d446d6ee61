/**
 * The file store: one JSON file, shared safely by several processes on one host.
 * - Writes take a cross-process lock (O_EXCL lock file beside the store), re-read the file,
 *   apply the change and replace the file atomically (temp file, fsync, rename).
 * - Reads re-load the file whenever its identity (inode, size, mtime in ns) changed, so a
 *   process sees what another one wrote.
 * - `create` is decided under the lock on the freshly read content: atomic across processes.
 * Record contents (tokens, passwords) never appear in error messages.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { acquireLock, type LockOptions } from './lock.js';
import type { CredentialStore, StoreRecord } from './types.js';

export interface FileStoreOptions extends LockOptions {
  /** Path of the JSON file (created on first write, with its folder). */
  path: string;
}

type Data = Record<string, Record<string, StoreRecord>>;

/** Most changes applied in one write. */
const MAX_BATCH = 1000;

interface FileShape {
  version: 1;
  namespaces: Data;
}

export class FileStore implements CredentialStore {
  readonly path: string;
  private readonly lockOpts: LockOptions;
  private data: Data = {};
  private signature = '';
  /** Changes waiting for the next write; one flush at a time per instance. */
  private pending: Array<{
    change: (data: Data) => boolean;
    resolve: (changed: boolean) => void;
    reject: (err: unknown) => void;
  }> = [];
  private flushing = false;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(opts: FileStoreOptions) {
    this.path = resolve(opts.path);
    this.lockOpts = { timeoutMs: opts.timeoutMs, staleMs: opts.staleMs };
  }

  async get(namespace: string, id: string): Promise<StoreRecord | undefined> {
    this.checkOpen();
    await this.refresh();
    const rec = own(own(this.data, namespace), id);
    return rec ? { ...rec } : undefined;
  }

  async create(namespace: string, id: string, record: StoreRecord): Promise<boolean> {
    checkRecord(record);
    return this.mutate(namespace, id, (data) => {
      const ns = nsOf(data, namespace);
      if (Object.hasOwn(ns, id)) return false;
      ns[id] = { ...record };
      return true;
    });
  }

  async put(namespace: string, id: string, record: StoreRecord): Promise<void> {
    checkRecord(record);
    await this.mutate(namespace, id, (data) => {
      nsOf(data, namespace)[id] = { ...record };
      return true;
    });
  }

  async delete(namespace: string, id: string): Promise<boolean> {
    return this.mutate(namespace, id, (data) => {
      const ns = own(data, namespace);
      if (!ns || !Object.hasOwn(ns, id)) return false;
      delete ns[id];
      if (Object.keys(ns).length === 0) delete data[namespace];
      return true;
    });
  }

  /** Every id of a namespace (administration and tests). */
  async list(namespace: string): Promise<string[]> {
    this.checkOpen();
    await this.refresh();
    return Object.keys(own(this.data, namespace) ?? {});
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue.catch(() => undefined);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the file store is closed');
  }

  /**
   * Runs `change` on fresh data under the lock; writes the file only when it reports a change.
   * Changes queued while a write is in progress are applied together, in order, under one
   * lock and one write (group commit): a burst of provisioning costs a few fsyncs, not one each.
   */
  private mutate(namespace: string, id: string, change: (data: Data) => boolean): Promise<boolean> {
    this.checkOpen();
    checkKey(namespace, id);
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ change, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        this.queue = this.flush().finally(() => {
          this.flushing = false;
        });
      }
    });
  }

  private async flush(): Promise<void> {
    for (let round = 0; this.pending.length > 0 && round < 1_000_000; round++) {
      const batch = this.pending.splice(0, MAX_BATCH);
      let results: boolean[];
      try {
        await mkdir(dirname(this.path), { recursive: true });
        const release = await acquireLock(`${this.path}.lock`, this.lockOpts);
        try {
          await this.refresh(true);
          const next = structuredClone(this.data);
          results = batch.map((op) => op.change(next));
          if (results.some((r) => r)) {
            await this.write(next);
            this.data = next;
          }
        } finally {
          await release();
        }
      } catch (err) {
        for (const op of batch) op.reject(err);
        continue;
      }
      batch.forEach((op, i) => {
        op.resolve(results[i] ?? false);
      });
    }
  }

  private async refresh(force = false): Promise<void> {
    let sig: string;
    try {
      const st = await stat(this.path, { bigint: true });
      sig = `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.data = {};
      this.signature = '';
      return;
    }
    if (!force && sig === this.signature) return;
    const text = await readFile(this.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    this.data = text === '' ? {} : parse(text, this.path);
    this.signature = sig;
  }

  private async write(data: Data): Promise<void> {
    const tmp = `${this.path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const body: FileShape = { version: 1, namespaces: data };
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(body, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const st = await stat(this.path, { bigint: true });
    this.signature = `${st.ino}:${st.size}:${st.mtimeNs}`;
  }
}

function parse(text: string, path: string): Data {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`store file ${path} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || !('namespaces' in value)) {
    throw new Error(`store file ${path} is not a store (expected {"version": 1, "namespaces": {...}})`);
  }
  const namespaces = (value as FileShape).namespaces;
  if (typeof namespaces !== 'object' || namespaces === null || Array.isArray(namespaces)) {
    throw new Error(`store file ${path}: "namespaces" must be an object`);
  }
  return namespaces;
}

/** A property only when it is the object's own (ids such as "constructor" are plain ids). */
function own<T>(obj: Record<string, T> | undefined, key: string): T | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

function checkKey(namespace: string, id: string): void {
  if (namespace === '__proto__' || id === '__proto__') throw new Error('store ids may not be "__proto__"');
}

function nsOf(data: Data, namespace: string): Record<string, StoreRecord> {
  let ns = own(data, namespace);
  if (!ns) {
    ns = {};
    data[namespace] = ns;
  }
  return ns;
}

function checkRecord(record: StoreRecord): void {
  for (const [k, v] of Object.entries(record)) {
    if (typeof v !== 'string') throw new Error(`store record field "${k}" must be a string`);
  }
}
