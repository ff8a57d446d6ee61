/**
 * The Redis store: records shared by every replica of the proxy. Each record is one JSON
 * string under `{prefix}{namespace}:{id}` (both parts URI-encoded, so ':' in an id cannot
 * collide). `create` is `SET … NX`: atomic across processes and hosts.
 * Failures are reported with fixed messages: the Redis URL (it may hold a password) and the
 * record contents never appear in them.
 */
import { Redis } from 'ioredis';
import type { CredentialStore, StoreRecord } from './types.js';

export interface RedisStoreOptions {
  /** redis://[user:password@]host:port/db */
  url: string;
  /** Key prefix (default "mqtt-proxy:"). */
  prefix?: string;
  /** A command that gets no answer within this time fails (default 2000 ms). */
  commandTimeoutMs?: number;
  /**
   * Connection problems (reconnects are automatic), once per outage; the error is already free
   * of secrets.
   */
  onError?: (err: Error) => void;
  /** The connection is ready again after an outage reported to onError. */
  onRecover?: () => void;
}

export class RedisStore implements CredentialStore {
  private readonly client: Redis;
  private readonly prefix: string;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? 'mqtt-proxy:';
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new Error('store.redisUrl is not a valid URL (expected redis://host:port/db)');
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new Error('store.redisUrl must start with redis:// or rediss://');
    }
    this.client = new Redis(opts.url, {
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      connectTimeout: opts.commandTimeoutMs ?? 2000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    });
    const target = `${parsed.hostname}:${parsed.port || '6379'}`;
    // ioredis emits an error for every failed reconnect attempt: report the first of an outage
    // only, and again once the connection was ready in between.
    let down = false;
    this.client.on('error', (err: Error & { code?: string }) => {
      if (down) return;
      down = true;
      opts.onError?.(new Error(`redis store ${target}: ${describe(err, 'connection error')}`));
    });
    this.client.on('ready', () => {
      if (!down) return;
      down = false;
      opts.onRecover?.();
    });
  }

  private key(namespace: string, id: string): string {
    return `${this.prefix}${encodeURIComponent(namespace)}:${encodeURIComponent(id)}`;
  }

  async get(namespace: string, id: string): Promise<StoreRecord | undefined> {
    const text = await this.run('get', () => this.client.get(this.key(namespace, id)));
    if (text === null) return undefined;
    try {
      const value = JSON.parse(text) as unknown;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as StoreRecord;
    } catch {
      // fall through
    }
    throw new Error('redis store: a stored record is not a JSON object');
  }

  async create(namespace: string, id: string, record: StoreRecord): Promise<boolean> {
    const body = encode(record);
    const res = await this.run('create', () => this.client.set(this.key(namespace, id), body, 'NX'));
    return res === 'OK';
  }

  async put(namespace: string, id: string, record: StoreRecord): Promise<void> {
    const body = encode(record);
    await this.run('put', () => this.client.set(this.key(namespace, id), body));
  }

  async delete(namespace: string, id: string): Promise<boolean> {
    const n = await this.run('delete', () => this.client.del(this.key(namespace, id)));
    return n > 0;
  }

  /** True once the connection answers PING (readiness checks). */
  async ping(): Promise<boolean> {
    try {
      return (await this.client.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const what = (err as Error).message.includes('timed out') ? 'timeout' : 'unavailable';
      throw new Error(`redis store ${op} failed: ${describe(err as Error, what)}`);
    }
  }
}

/** What the server answers when it refuses the URL's credentials, in the operator's terms. */
const REFUSALS: Record<string, string> = {
  WRONGPASS: 'WRONGPASS, the user or password of store.redisUrl is refused',
  NOAUTH: 'NOAUTH, the server needs a password: redis://:PASSWORD@host:port/db in store.redisUrl',
};

/**
 * A failure in a few words: the socket's error code, or the server's error word for a refusal
 * (its reply, e.g. "WRONGPASS invalid username-password pair", names no value), else `fallback`.
 * Never the URL.
 */
function describe(err: Error & { code?: string }, fallback: string): string {
  if (err.code) return err.code;
  if (err.name === 'ReplyError') {
    const word = /^[A-Z]+/.exec(err.message)?.[0] ?? 'ERR';
    return REFUSALS[word] ?? `${word} from the server`;
  }
  return fallback;
}

function encode(record: StoreRecord): string {
  for (const [k, v] of Object.entries(record)) {
    if (typeof v !== 'string') throw new Error(`store record field "${k}" must be a string`);
  }
  return JSON.stringify(record);
}
