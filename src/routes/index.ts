/**
 * The impure shell around the mapping engine: loads a route (its dialect files, its
 * identity source) from disk, watches them for changes and swaps validated versions in.
 * An invalid change keeps the old version and logs every error.
 */
import { type FSWatcher, watch } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { verifyJwt } from '../auth/jwt.js';
import type { ConnectDecision, RouteHandler, SouthHello } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { createDialectRoute, type MintJwt, type MintJwtSync } from '../mapping/engine.js';
import { fleetErrors } from '../mapping/fleet-index.js';
import { CredentialsIndex } from '../mapping/identity.js';
import { loadMappings } from '../mapping/load.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CredentialStore } from '../store/types.js';
import type { NorthTls } from '../upstream/transport.js';
import { readCredentials } from './credentials.js';
import { FOLDERS, readMappingFiles } from './files.js';
import { createJwtMinter } from './jwt.js';
import { passThroughRoute } from './passthrough.js';

/** A device JWT (south `password: { jwt: ... }`): RS256 or ES256, an exp required; the reason when refused. */
export function verifyDeviceJwt(
  token: string,
  publicKey: string,
  audience: string | undefined,
): string | undefined {
  // A dialect that wants an audience whose template came out empty (a value the record
  // lacks) checks nothing: refused, rather than accepting a token meant for anyone.
  if (audience === '') return 'audience';
  try {
    const r = verifyJwt(token, publicKey, audience !== undefined ? { audience } : {});
    return r.ok ? undefined : r.reason;
  } catch {
    return 'key';
  }
}

import { routeLocal } from './provision.js';

export { passThroughRoute } from './passthrough.js';

export interface LoadedRoute {
  handler: RouteHandler;
  /** The route's own north URL (`url:` in its file), as last loaded; undefined when it has none. */
  northUrl(): string | undefined;
  reload(): Promise<{ ok: boolean; errors: string[] }>;
  close(): void;
}

export interface LoadRouteOptions {
  dir: string;
  route: string;
  credentials?: string | undefined;
  store?: CredentialStore | undefined;
  log: Logger;
  metrics?: Metrics | undefined;
  /** Mints north JWTs (akenza device credentials, ClearBlade gateways). */
  mintJwt?: MintJwt;
  mintJwtSync?: MintJwtSync;
  /** Watch the files and reload on change (default true). */
  watch?: boolean;
  /** The process's north URL (routes without their own `url`): used to activate devices north. */
  northUrl?: string | undefined;
  /** TLS options of the north connections (north.ca, north.cert...), used to activate devices north too. */
  northTls?: NorthTls | undefined;
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

/** Builds the route's handler from disk: all errors together, or a handler. */
export async function buildRoute(
  opts: LoadRouteOptions,
): Promise<{ handler?: RouteHandler; errors: string[]; watched: string[]; url?: string }> {
  const { files, errors } = await readMappingFiles(opts.dir);
  const m = loadMappings(files);
  errors.push(...m.errors);
  const spec = m.routes.get(opts.route);
  if (!spec) {
    if (errors.length === 0) {
      const known = [...m.routes.keys()].join(', ') || 'none';
      errors.push(
        `${join(opts.dir, 'routes')}:1:1: no route named '${opts.route}' (routes: ${known}, or passthrough)`,
      );
    }
    return { errors, watched: [] };
  }
  const credFile = opts.credentials || spec.identity.file;
  const path = credFile ? (isAbsolute(credFile) ? credFile : join(opts.dir, credFile)) : undefined;
  let index = new CredentialsIndex([]);
  if (path) {
    const c = await readCredentials(path);
    errors.push(...c.errors, ...fleetErrors(spec.plan, c.records, path));
    index = new CredentialsIndex(c.records, spec.identity.key);
  } else if (!opts.store) {
    errors.push(
      `${spec.file}:1:1: route '${spec.name}' has no identity source (add identity: { file: ... } or pass --credentials)`,
    );
  }
  const local = await routeLocal(spec, opts.dir, opts.store, index, errors, {
    url: opts.northUrl,
    log: opts.log,
    tls: opts.northTls,
  });
  if (errors.length > 0) return { errors, watched: [] };
  const handler = createDialectRoute({
    name: spec.name,
    plan: spec.plan,
    identity: local?.identity ?? index,
    routeVars: spec.vars,
    ...(spec.url ? { url: spec.url } : {}),
    connection: spec.connection,
    ...(spec.southGateway ? { southGateway: spec.southGateway } : {}),
    ...(spec.uplinkOnly ? { uplinkOnly: true } : {}),
    ...(opts.mintJwt ? { mintJwt: opts.mintJwt } : {}),
    ...(opts.mintJwtSync ? { mintJwtSync: opts.mintJwtSync } : {}),
    verifyJwt: verifyDeviceJwt,
  });
  const watched = [...(path ? [path] : []), ...(local?.watched ?? [])];
  return {
    handler: local ? local.wrap(handler) : handler,
    errors,
    watched,
    ...(spec.url ? { url: spec.url } : {}),
  };
}

export async function loadRoute(opts: LoadRouteOptions): Promise<LoadedRoute> {
  if (opts.route === 'passthrough') {
    const reload = async () => {
      // Nothing to read for the pass-through route: a reload always succeeds, and is counted.
      opts.metrics?.reloadsTotal.inc({ kind: 'mapping', result: 'success' });
      return { ok: true, errors: [] };
    };
    return { handler: passThroughRoute(), northUrl: () => undefined, reload, close() {} };
  }
  if (!opts.mintJwt) {
    // One caching signer for the route's life (reloads keep the cached tokens).
    const minter = createJwtMinter(opts.metrics, opts.log);
    opts = { ...opts, mintJwt: minter.mintJwt, mintJwtSync: minter.mintJwtSync };
  }
  const first = await buildRoute(opts);
  if (!first.handler) throw new MappingError(first.errors);
  let current: RouteHandler = first.handler;
  let currentUrl = first.url;
  const log = opts.log;
  // A stable handler delegating to the current version: swapped atomically for new sessions.
  const handler: RouteHandler = {
    name: current.name,
    passThrough: false,
    get southGateway() {
      return current.southGateway;
    },
    openSession: (hello: SouthHello): Promise<ConnectDecision> => current.openSession(hello),
  };
  let watchers: FSWatcher[] = [];
  let lastWatched = first.watched;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<{ ok: boolean; errors: string[] }> | undefined;

  let closed = false;
  const reload = async (): Promise<{ ok: boolean; errors: string[] }> => {
    if (closed) return { ok: false, errors: ['the route is closed'] };
    let next: Awaited<ReturnType<typeof buildRoute>>;
    try {
      next = await buildRoute(opts);
    } catch (err) {
      // Not a mapping error the loader could report: refused all the same, never thrown.
      next = { errors: [`reload failed: ${(err as Error).message.split('\n')[0]}`], watched: lastWatched };
    }
    if (closed) return { ok: false, errors: ['the route is closed'] };
    if (!next.handler) {
      // The one line per error of a refused reload, whatever triggered it (SIGHUP, the watcher).
      for (const e of next.errors)
        log.error({ mappingError: e }, 'reload refused: mapping invalid, old version kept');
      opts.metrics?.reloadsTotal.inc({ kind: 'mapping', result: 'failure' });
      // Watch again even so: a ConfigMap update swaps the folder, and the fix comes next.
      rewatch(lastWatched);
      return { ok: false, errors: next.errors };
    }
    lastWatched = next.watched;
    current = next.handler;
    currentUrl = next.url;
    opts.metrics?.reloadsTotal.inc({ kind: 'mapping', result: 'success' });
    log.info({ route: opts.route }, 'mappings reloaded');
    rewatch(next.watched);
    return { ok: true, errors: [] };
  };
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      running = (running ?? Promise.resolve({ ok: true, errors: [] })).then(reload, reload);
    }, 150);
    timer.unref();
  };
  const rewatch = (extra: string[]) => {
    if (opts.watch === false || closed) return;
    for (const w of watchers) w.close();
    watchers = [];
    const dirs = new Set([...FOLDERS.map((f) => join(opts.dir, f)), ...extra.map((p) => dirname(p))]);
    for (const d of dirs) {
      try {
        const w = watch(d, { persistent: false }, schedule);
        w.on('error', () => undefined);
        watchers.push(w);
      } catch {
        // folder absent: nothing to watch there
      }
    }
  };
  rewatch(first.watched);
  return {
    handler,
    northUrl: () => currentUrl,
    reload,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
      watchers = [];
    },
  };
}
