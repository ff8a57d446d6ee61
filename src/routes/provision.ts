/**
 * Device identities kept in a CredentialStore, for a route whose south dialect lets devices
 * activate themselves (Connector `$provision/{deviceId}`), and the `$content` list read from a
 * file. The pure parts (which topics, which replies) are in mapping/provision.ts; this file
 * owns the store records and the secrets' hashing.
 *
 * Records, in the route's namespace NS (`identity.store`):
 *   NS/{deviceId}          { kind: token|password|certificate, hash, salt? }
 *   NS-token/{sha256(tok)} { deviceId }   (a token alone finds its device)
 * Tokens are 160 random bits, kept as SHA-256; passwords as scrypt with a per-device salt.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { ConnectDecision, RouteHandler, SouthHello } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { compileText } from '../mapping/codecs.js';
import type { SouthScheme } from '../mapping/dialect.js';
import { type IdentitySource, recognise } from '../mapping/engine.js';
import type { Fleet } from '../mapping/fleet-index.js';
import type { CredentialsIndex } from '../mapping/identity.js';
import type { RouteSpec } from '../mapping/load.js';
import type { Plan } from '../mapping/plan.js';
import {
  AnonymousSession,
  LocalRequests,
  type LocalServices,
  type Provisioner,
  type ProvisionResult,
} from '../mapping/provision.js';
import type { Vars } from '../mapping/template.js';
import type { CredentialStore, StoreRecord } from '../store/types.js';
import { type NorthTls, northTlsOptions, parseNorthUrl } from '../upstream/transport.js';
import { ActivatingIdentity, type NorthActivation } from './north-provision.js';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function scryptHex(secret: string, salt: string): Promise<string> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, 32, (err, key) => (err ? reject(err) : resolve(key.toString('hex')))),
  );
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

const ENV = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `${NAME}` from the environment; the names that are unset are reported. */
export function expandEnv(v: string, env: NodeJS.ProcessEnv, missing: string[]): string {
  return v.replace(ENV, (_, name: string) => {
    const x = env[name];
    if (x === undefined) missing.push(name);
    return x ?? '';
  });
}

/** Identities registered by activation: creation is atomic, so an id activates once. */
export class StoreRegistry implements Provisioner {
  constructor(
    private readonly store: CredentialStore,
    private readonly ns: string,
    readonly mode: 'token' | 'password',
    /** Ids that exist elsewhere (the credentials file): activating one is refused too. */
    private readonly listed: (deviceId: string) => boolean = () => false,
  ) {}

  async provision(
    deviceId: string,
    secret: { password?: string; certificate?: boolean },
  ): Promise<ProvisionResult> {
    if (this.listed(deviceId)) return { refused: 'provision_existing_device' };
    let record: StoreRecord;
    let token: string | undefined;
    if (secret.certificate) record = { kind: 'certificate', hash: '' };
    else if (this.mode === 'password') {
      const salt = randomBytes(16).toString('hex');
      record = { kind: 'password', hash: await scryptHex(secret.password ?? '', salt), salt };
    } else {
      token = randomBytes(20).toString('hex');
      record = { kind: 'token', hash: sha256(token) };
    }
    // The token's index first: the device record is what makes the id taken, so a failure
    // (or a restart) between the two writes leaves at most an index entry no token reaches,
    // never an id activated without a token anyone holds.
    const index = token !== undefined ? sha256(token) : undefined;
    if (index !== undefined) await this.store.put(`${this.ns}-token`, index, { deviceId });
    if (!(await this.store.create(this.ns, deviceId, record))) {
      if (index !== undefined) await this.store.delete(`${this.ns}-token`, index).catch(() => undefined);
      return { refused: 'provision_existing_device' };
    }
    return token !== undefined ? { token } : {};
  }

  /** The device a CONNECT proves, or why not. */
  async verify(
    extracted: Readonly<Vars>,
    scheme: Pick<SouthScheme, 'scheme' | 'credential'>,
  ): Promise<{ deviceId: string } | { error: 'unknown_device' | 'bad_credentials' }> {
    const secret = scheme.credential ? extracted[scheme.credential] : undefined;
    let deviceId = extracted.deviceId;
    if (deviceId === undefined && secret !== undefined) {
      deviceId = (await this.store.get(`${this.ns}-token`, sha256(secret)))?.deviceId;
      if (deviceId === undefined) return { error: 'bad_credentials' };
    }
    if (deviceId === undefined) return { error: 'unknown_device' };
    const rec = await this.store.get(this.ns, deviceId);
    if (!rec?.kind) return { error: 'unknown_device' };
    if (scheme.scheme === 'certificate')
      return rec.kind === 'certificate' ? { deviceId } : { error: 'bad_credentials' };
    if (secret === undefined || rec.kind === 'certificate') return { error: 'bad_credentials' };
    const ok =
      rec.kind === 'password'
        ? sameHex(await scryptHex(secret, rec.salt ?? ''), rec.hash ?? '')
        : sameHex(sha256(secret), rec.hash ?? '');
    return ok ? { deviceId } : { error: 'bad_credentials' };
  }
}

/** The credentials file first, then the identities devices registered themselves. */
export class StoreIdentity implements IdentitySource {
  private readonly north: Array<[string, (v: Readonly<Vars>) => string]>;

  constructor(
    private readonly file: CredentialsIndex,
    private readonly registry: StoreRegistry,
    /** North variables of a registered device, as templates over its south variables. */
    north: Readonly<Record<string, string>>,
  ) {
    this.north = Object.entries(north).map(([k, t]) => [k, compileText(t)]);
  }

  async resolve(
    extracted: Readonly<Vars>,
    scheme: SouthScheme,
  ): Promise<{ vars: Vars; fleet?: Fleet } | { error: 'unknown_device' | 'bad_credentials' }> {
    const fromFile = this.file.size > 0 ? this.file.resolveSync(extracted, scheme) : undefined;
    if (fromFile && 'vars' in fromFile) return fromFile;
    const found = await this.registry.verify(extracted, scheme);
    if ('error' in found) return fromFile?.error === 'bad_credentials' ? fromFile : found;
    const vars: Vars = { deviceId: found.deviceId };
    for (const [k, f] of this.north) vars[k] = f(vars);
    return { vars };
  }
}

/**
 * The route with local requests: anonymous clients (and certificates not activated yet)
 * get an activation-only session; accepted devices get `provision`/`content` answered here.
 */
export function withLocalRequests(
  inner: RouteHandler,
  plan: Plan,
  northKeepaliveMax: number,
  local: LocalServices,
): RouteHandler {
  const south = plan.south;
  const quirks = Object.freeze({ ...south.quirks, northKeepaliveMax });
  const canActivate = local.provisioner !== undefined && south.anonymous === 'provision_only';
  return {
    name: inner.name,
    passThrough: false,
    ...(inner.southGateway ? { southGateway: inner.southGateway } : {}),
    async openSession(hello: SouthHello): Promise<ConnectDecision> {
      const c = hello.connect;
      const prov = local.provisioner;
      if (canActivate && prov && !c.username && !c.password && hello.peerCommonName === undefined) {
        return {
          accept: true,
          north: { mode: 'local' },
          mapper: new AnonymousSession(south, prov),
          quirks,
          dialect: south.name,
        };
      }
      const d = await inner.openSession(hello);
      if (d.accept) return { ...d, mapper: new LocalRequests(d.mapper, south, local) };
      // A certificate the route does not know yet activates by connecting (the Connector's
      // certificate_activate.py connects and disconnects; its CN is the device id). Should the
      // store refuse the record, it may still activate with $provision/{CN}.
      if (canActivate && prov && d.reason === 'unknown_device' && hello.peerCommonName !== undefined) {
        const r = recognise(south, hello);
        const id = r?.scheme.scheme === 'certificate' ? r.vars.deviceId : undefined;
        if (id === undefined) return d;
        const made = await prov.provision(id, { certificate: true }).catch(() => undefined);
        if (made && (!('refused' in made) || made.refused === 'provision_existing_device')) {
          const again = await inner.openSession(hello);
          if (again.accept) return { ...again, mapper: new LocalRequests(again.mapper, south, local) };
        }
        return {
          accept: true,
          north: { mode: 'local' },
          mapper: new AnonymousSession(south, prov, id),
          quirks,
          dialect: south.name,
        };
      }
      return d;
    },
  };
}

export interface RouteLocal {
  /** The identity source to use instead of the credentials file alone. */
  identity?: IdentitySource;
  wrap(handler: RouteHandler): RouteHandler;
  /** Files to watch (the content list). */
  watched: string[];
}

/** The local services a route asks for (activation, content), or undefined when none. */
export async function routeLocal(
  spec: RouteSpec,
  dir: string,
  store: CredentialStore | undefined,
  index: CredentialsIndex,
  errors: string[],
  north: { url?: string | undefined; log: Logger; tls?: NorthTls | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Promise<RouteLocal | undefined> {
  const id = spec.identity;
  const activation = northActivation(spec, store, north.url, north.tls);
  if (activation && store) {
    const ns = id.store ?? `${spec.north}-north`;
    return {
      identity: new ActivatingIdentity(
        index,
        store,
        ns,
        activation,
        north.log.child({ part: 'north-activation' }),
      ),
      watched: [],
      wrap: (h) => h,
    };
  }
  // Devices activated earlier keep connecting when activation is turned off (no `provision`).
  const keptDevices =
    id.store !== undefined && id.north !== undefined && spec.plan.south.anonymous === 'provision_only';
  if (!id.provision && !keptDevices && !spec.content && !spec.offlineSync) return undefined;
  const local: LocalServices = spec.offlineSync ? { offlineSync: true } : {};
  const out: RouteLocal = { watched: [], wrap: (h) => h };
  if (id.provision && !id.north)
    errors.push(
      `${spec.file}:1:1: route '${spec.name}' lets devices activate themselves: identity.north must give their north variables (e.g. { thngId: "{deviceId}", apiKey: "\${KEY}" })`,
    );
  if (id.provision || keptDevices) {
    if (!store) {
      errors.push(
        `${spec.file}:1:1: route '${spec.name}' keeps device identities in a store but none is configured (store.kind)`,
      );
    } else {
      const registry = new StoreRegistry(store, id.store ?? spec.south, id.provision ?? 'token', (d) =>
        index.has('deviceId', d),
      );
      const missing: string[] = [];
      const north: Record<string, string> = {};
      for (const [k, v] of Object.entries(id.north ?? {})) north[k] = expandEnv(v, env, missing);
      for (const m of missing)
        errors.push(`${spec.file}:1:1: environment variable ${m} is not set (identity.north)`);
      if (id.provision) local.provisioner = registry;
      out.identity = new StoreIdentity(index, registry, north);
    }
  }
  if (spec.content) {
    const path = isAbsolute(spec.content) ? spec.content : join(dir, spec.content);
    try {
      const text = await readFile(path, 'utf8');
      const list: unknown = JSON.parse(text);
      if (!Array.isArray(list))
        errors.push(`${path}:1:1: the content list must be a JSON array of {name, length, mime, url}`);
      else local.content = Buffer.from(JSON.stringify(list));
      out.watched.push(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      errors.push(`${path}:1:1: cannot read the content list: ${code ?? (e as Error).message}`);
    }
  }
  const keepalive = spec.plan.north.keepaliveMax;
  out.wrap = (h) => withLocalRequests(h, spec.plan, keepalive, local);
  return out;
}

/** North activation settings when the north dialect lets devices activate themselves and a store is there. */
function northActivation(
  spec: RouteSpec,
  store: CredentialStore | undefined,
  northUrl: string | undefined,
  tls: NorthTls | undefined,
): NorthActivation | undefined {
  const rule = spec.plan.north.upRules.find((r) => r.up === 'provision');
  const url = spec.url ?? northUrl;
  if (!rule || !store || !spec.identity.store || !url) return undefined;
  return {
    url,
    topic: (v) => rule.tpl.build(v),
    idVar: 'deviceId',
    tokenVar: 'token',
    credentialVars: ['token', 'password'],
    tls: northTlsOptions(parseNorthUrl(url), tls),
  };
}
