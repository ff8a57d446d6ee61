/**
 * The impure shell around the mapping engine: loads a route (its dialect files, its
 * identity source) from disk, watches them for changes and swaps validated versions in.
 */
import type { RouteHandler } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CredentialStore } from '../store/types.js';
import { passThroughRoute } from './passthrough.js';

export { passThroughRoute } from './passthrough.js';

export interface LoadedRoute {
  handler: RouteHandler;
  reload(): Promise<{ ok: boolean; errors: string[] }>;
  close(): void;
}

export interface LoadRouteOptions {
  dir: string;
  route: string;
  credentials?: string;
  store?: CredentialStore;
  log: Logger;
  metrics?: Metrics;
}

/** Thrown when a mapping is invalid; each line of `errors` reads "file:line:col: message (hint)". */
export class MappingError extends Error {
  readonly code = 'MDP_ERR_MAPPING';
  readonly errors: string[];
  constructor(errors: string[]) {
    super(`invalid mapping (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.join('\n')}`);
    this.name = 'MappingError';
    this.errors = errors;
  }
}

export async function loadRoute(opts: LoadRouteOptions): Promise<LoadedRoute> {
  if (opts.route === 'passthrough') {
    return { handler: passThroughRoute(), reload: async () => ({ ok: true, errors: [] }), close() {} };
  }
  throw new MappingError([`${opts.dir}: route '${opts.route}' is not available yet`]);
}
