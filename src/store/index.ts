/** Builds the configured credentials store. */
import type { ProxyConfig } from '../config/schema.js';
import { FileStore } from './file.js';
import { RedisStore } from './redis.js';
import type { CredentialStore } from './types.js';

export { FileStore } from './file.js';
export { RedisStore } from './redis.js';
export type { CredentialStore, StoreRecord } from './types.js';

export interface CreateStoreOptions {
  /** Connection problems of a shared store (already free of secrets), once per outage: log them. */
  onError?: (err: Error) => void;
  /** The shared store is reachable again after an outage. */
  onRecover?: () => void;
}

export function createStore(config: ProxyConfig['store'], opts: CreateStoreOptions = {}): CredentialStore {
  switch (config.kind) {
    case 'file':
      return new FileStore({ path: config.file });
    case 'redis':
      return new RedisStore({ url: config.redisUrl, onError: opts.onError, onRecover: opts.onRecover });
    default:
      throw new Error(
        `unknown store kind "${String((config as { kind: unknown }).kind)}" (use "file" or "redis")`,
      );
  }
}
