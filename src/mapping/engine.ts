/**
 * A translating RouteHandler: recognises the south identity per the south dialect's auth
 * schemes, resolves it through an identity source, builds the north CONNECT (or gateway
 * plan) from the north dialect, and binds a DialectSession to the identity variables.
 */
import type { IConnectPacket, QoS } from 'mqtt-packet';
import type {
  ConnectDecision,
  NorthPlan,
  PublishOut,
  Quirks,
  RouteHandler,
  SessionMapper,
  SouthGatewaySpec,
  SouthHello,
} from '../core/contract.js';
import type { CompiledDialect, JwtSpec, NorthScheme, SouthScheme } from './dialect.js';
import { EchoScopePool } from './echo-scope.js';
import { FleetSession } from './fleet.js';
import { type Fleet, fleetLayout } from './fleet-index.js';
import { LastValues } from './last-values.js';
import type { Plan } from './plan.js';
import { DialectSession, usable } from './session.js';
import { safeLevel, type Template, type Vars } from './template.js';
import { KeyGate, keyConnect, takesTopicKeys, topicKey } from './topic-key.js';

/** Resolves a recognised south identity into the session's variables (south and north). */
export interface IdentitySource {
  resolve(
    extracted: Readonly<Vars>,
    scheme: SouthScheme,
  ): Promise<{ vars: Vars; fleet?: Fleet } | { error: 'unknown_device' | 'bad_credentials' }>;
}

/** Mints a JWT for a north CONNECT (injected: the engine itself stays pure). */
export type MintJwt = (req: {
  id: string;
  privateKey: string;
  alg: string;
  claims: Record<string, unknown>;
  ttlSec: number;
  /** Sign anew even when a cached token is still valid (credential renewal). */
  fresh?: boolean;
}) => Promise<string>;

/** The same, synchronous: a gateway's renewed CONNECT is built when its link reconnects. */
export type MintJwtSync = (req: Parameters<MintJwt>[0]) => string;

/** Keepalive of a gateway's shared north connection (seconds), whatever its devices ask. */
export const GATEWAY_LINK_KEEPALIVE_S = 60;

export interface EngineOptions {
  name: string;
  plan: Plan;
  identity: IdentitySource;
  /** Constant variables of the route (e.g. project, region). */
  routeVars?: Readonly<Vars>;
  url?: string;
  connection?: 'direct' | 'gateway';
  /**
   * South clients may be gateways of this grammar: a CONNECT without `hello.gateway` whose
   * record is a gateway's (`role: gateway`) is the gateway's own (authenticated, nothing
   * north); any other is a device connecting directly. One with `hello.gateway` is an attached
   * device, accepted with its own JWT or, without one, when its record names that gateway
   * (`gateway: gw-1`), or the gateway's own topics (its own record, on its own authority).
   * A record naming another gateway is refused either way.
   */
  southGateway?: SouthGatewaySpec;
  /**
   * Uplinks only (`downlinks: false`): no north subscription (none automatic, a SUBSCRIBE is
   * refused), so nothing comes back; the north session is clean (nothing to keep for the device).
   */
  uplinkOnly?: boolean;
  mintJwt?: MintJwt;
  mintJwtSync?: MintJwtSync;
  /** Verifies a device's JWT with its public key: undefined when valid, else a short failure code. */
  verifyJwt?: (token: string, publicKey: string, audience: string | undefined) => string | undefined;
  /** Microseconds since the epoch (injected for golden tests). */
  nowUs?: () => number;
}

type Reject = Extract<ConnectDecision, { accept: false }>;
const reject = (returnCode: number, reasonCode: number, reason: string): Reject => ({
  accept: false,
  returnCode,
  reasonCode,
  reason,
});

function fieldText(v: string | Buffer | undefined): string {
  return v === undefined ? '' : typeof v === 'string' ? v : v.toString('utf8');
}

/** Matches a whole CONNECT field against alternatives; a lone capture takes any non-empty value. */
function matchField(tpls: readonly Template[] | undefined, value: string, out: Vars): boolean {
  if (!tpls) return true;
  for (const t of tpls) {
    // No capture: the field is the template's text (its levels, compared one by one, are that).
    if (t.literal) {
      if (value === t.source) return true;
      continue;
    }
    const name = t.lone;
    if (name !== undefined) {
      if (value.length === 0 || value.includes('\0')) continue;
      // A variable named by two fields (client id and username) must be the same in both.
      if (out[name] !== undefined && out[name] !== value) continue;
      out[name] = value;
      return true;
    }
    const caps: Vars = {};
    if (t.match(value.split('/'), caps) && agrees(caps, out)) {
      Object.assign(out, caps);
      return true;
    }
  }
  return false;
}

/** True when every variable of `caps` is unset in `out` or has the same value there. */
function agrees(caps: Readonly<Vars>, out: Readonly<Vars>): boolean {
  for (const k in caps) if (out[k] !== undefined && out[k] !== caps[k]) return false;
  return true;
}

/** The first south scheme a CONNECT satisfies, with the variables it provides. */
export function recognise(
  south: CompiledDialect,
  hello: SouthHello,
): { scheme: SouthScheme; vars: Vars } | undefined {
  return recogniseAll(south, hello)[0];
}

/**
 * Every south scheme a CONNECT satisfies, in the dialect's order: one CONNECT may fit
 * several (Connector: username = device id with a token or with a password).
 */
export function recogniseAll(
  south: CompiledDialect,
  hello: SouthHello,
): Array<{ scheme: SouthScheme; vars: Vars }> {
  const c = hello.connect;
  const out: Array<{ scheme: SouthScheme; vars: Vars }> = [];
  for (const s of south.southAuth) {
    const vars: Vars = {};
    if (s.commonName) {
      if (hello.peerCommonName === undefined || !matchField([s.commonName], hello.peerCommonName, vars))
        continue;
    }
    if (!matchField(s.clientId, c.clientId ?? '', vars)) continue;
    if (!matchField(s.username, c.username ?? '', vars)) continue;
    if (!matchField(s.password, fieldText(c.password), vars)) continue;
    if (s.credential !== undefined && !vars[s.credential]) continue;
    if (s.jwt && fieldText(c.password).length === 0) continue;
    out.push({ scheme: s, vars });
  }
  return out;
}

/**
 * The schemes whose client id a CONNECT matches, password aside: a device attached by a
 * gateway without a JWT of its own is known by its client id, on the gateway's authority.
 */
function recogniseByClientId(
  south: CompiledDialect,
  hello: SouthHello,
): Array<{ scheme: SouthScheme; vars: Vars }> {
  const out: Array<{ scheme: SouthScheme; vars: Vars }> = [];
  for (const s of south.southAuth) {
    const vars: Vars = {};
    if (!s.clientId || !matchField(s.clientId, hello.connect.clientId ?? '', vars)) continue;
    out.push({ scheme: { ...s, credential: undefined }, vars });
  }
  return out;
}

/** A south gateway's own session: it is authenticated, its traffic goes through its devices' sessions. */
function gatewayMapper(): SessionMapper {
  return {
    uplink: () => ({ verdict: 'drop', reason: 'unmapped' }),
    downlink: () => ({ verdict: 'drop', reason: 'unmapped' }),
    subscribe: (p) => ({ north: [], granted: p.subscriptions.map(() => ({ code: 0x80 })) }),
    unsubscribe: () => ({ north: [], ackOnly: true }),
    autoSubscribe: () => [],
    close() {},
  };
}

function pickNorth(north: CompiledDialect, vars: Readonly<Vars>): NorthScheme | undefined {
  return north.northAuth.find((s) => s.vars.every((v) => vars[v] !== undefined));
}

function isJwt(p: NorthScheme['password']): p is JwtSpec {
  return typeof p === 'object' && p !== null;
}

/** Renew a credential of `ttlSec` this long after signing: 5 minutes early, or a fifth early when short. */
export function renewAfterMs(ttlSec: number): number {
  return Math.max(1, ttlSec - Math.min(300, Math.floor(ttlSec / 5))) * 1000;
}

export function createDialectRoute(opts: EngineOptions): RouteHandler {
  const { plan } = opts;
  const south = plan.south;
  const north = plan.north;
  const uplinkOnly = opts.uplinkOnly === true;
  const quirks: Quirks = Object.freeze({
    ...south.quirks,
    northKeepaliveMax: north.keepaliveMax,
    // Without downlinks a persistent north session would only keep what a device never takes.
    ...(uplinkOnly ? { cleanSession: 'pass' as const } : {}),
  });
  const nowUs = opts.nowUs ?? (() => Date.now() * 1000);
  const gateway = opts.connection === 'gateway' && north.gateway !== undefined;
  // Identity variables that build topics on either side must be single safe levels.
  const topicVars = new Set([...south.rules, ...north.rules].flatMap((r) => r.identityCaps));
  // Last values seen by the route's sessions, for clients that subscribe with ?pubStates=1.
  const lastValues = south.options.has('pubStates') ? new LastValues() : undefined;
  // Echo sets and north filters of persistent north sessions, by north client id (the
  // broker's session key): they outlive a connection as the broker's session does.
  const echoes = new EchoScopePool();
  // Keys on topics (EVRYTHNG ?access_token=): a CONNECT without credentials waits for one.
  const topicKeys = takesTopicKeys(south);

  const jwtRequest = (p: JwtSpec, v: Readonly<Vars>, id: string, fresh = false) => ({
    id,
    privateKey: v[p.key] ?? '',
    alg: p.alg,
    claims: p.claims(v),
    ttlSec: p.ttl,
    fresh,
  });

  const buildConnect = async (
    scheme: NorthScheme,
    vars: Vars,
    c: IConnectPacket,
    id: string,
  ): Promise<IConnectPacket> => {
    // A client id from the credentials (e.g. foxtrackr's id-{given}-{nn}) wins over the device's.
    const v: Vars = { clientId: c.clientId ?? '', ...vars };
    const version = north.versions.includes(c.protocolVersion ?? 4)
      ? (c.protocolVersion ?? 4)
      : (north.versions[north.versions.length - 1] ?? 4);
    const out: IConnectPacket = {
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version as 3 | 4 | 5,
      clientId: scheme.clientId ? scheme.clientId(v) : (c.clientId ?? ''),
      // A platform whose sessions must persist (foxtrackr keeps 7 days for a known client).
      clean: north.persistent ? false : uplinkOnly || (c.clean ?? true),
      keepalive: c.keepalive ?? 60,
    };
    if (scheme.username) out.username = scheme.username(v);
    const p = scheme.password;
    if (isJwt(p)) {
      if (!opts.mintJwt) throw new Error('jwt_unavailable');
      out.password = Buffer.from(await opts.mintJwt(jwtRequest(p, v, id)));
    } else if (p) out.password = Buffer.from(p(v));
    if (version === 5 && c.properties) out.properties = c.properties;
    return out;
  };

  return {
    name: opts.name,
    passThrough: false,
    ...(opts.southGateway ? { southGateway: opts.southGateway } : {}),
    async openSession(given: SouthHello): Promise<ConnectDecision> {
      let hello = given;
      if (given.topicKey !== undefined) {
        // A key given on a topic: the CONNECT it stands in for (its password).
        const keyed = topicKeys ? keyConnect(south, given.connect, given.topicKey) : undefined;
        if (!keyed) return reject(4, 0x86, 'bad_credentials');
        hello = { ...given, connect: keyed };
      }
      const c = hello.connect;
      const attached = opts.southGateway !== undefined && hello.gateway !== undefined;
      // An attached device without a JWT: known by its client id, bound to the gateway (checked below).
      const byGateway = attached && fieldText(c.password).length === 0;
      const candidates = byGateway ? recogniseByClientId(south, hello) : recogniseAll(south, hello);
      let found = candidates[0];
      if (!found) {
        const anonymous = !c.username && !c.password && hello.peerCommonName === undefined;
        if (anonymous && topicKeys && hello.gateway === undefined && !hello.listener.startsWith('native'))
          return {
            accept: true,
            north: { mode: 'local' },
            mapper: new KeyGate(south),
            quirks,
            dialect: south.name,
            awaitsKey: { keyOf: topicKey },
          };
        return anonymous ? reject(5, 0x87, 'not_authorized') : reject(4, 0x86, 'bad_credentials');
      }
      let resolved = await opts.identity.resolve(found.vars, found.scheme);
      // A credential that is not the first scheme's may be the next one's (token or password).
      for (const next of candidates.slice(1)) {
        if (!('error' in resolved) || resolved.error !== 'bad_credentials') break;
        const r = await opts.identity.resolve(next.vars, next.scheme);
        if (!('error' in r)) {
          resolved = r;
          found = next;
        }
      }
      if ('error' in resolved)
        return resolved.error === 'unknown_device'
          ? reject(5, 0x87, 'unknown_device')
          : reject(4, 0x86, 'bad_credentials');
      const vars: Vars = { ...opts.routeVars, ...resolved.vars };
      const jwtCheck = byGateway ? undefined : found.scheme.jwt;
      if (jwtCheck) {
        // The device's own JWT, verified with the public key of its record; kept as deviceJwt
        // (a gateway attaches the device with it).
        const key = vars[jwtCheck.key];
        const token = fieldText(c.password);
        const failure =
          key && opts.verifyJwt ? opts.verifyJwt(token, key, jwtCheck.audience?.(vars)) : 'unverifiable';
        if (failure !== undefined) return reject(4, 0x86, 'bad_jwt');
        vars.deviceJwt = token;
      }
      for (const v of topicVars)
        if (vars[v] !== undefined && !safeLevel(vars[v] as string)) return reject(5, 0x87, 'bad_identity');
      const scheme = pickNorth(north, vars);
      if (opts.southGateway) {
        const bound = vars.gateway;
        // A gateway: its record says `role: gateway`, or (older records) it has neither north
        // credentials nor a gateway of its own, so it could not be served as a device anyway.
        const isGateway =
          vars.role === 'gateway' || (vars.role === undefined && !scheme && bound === undefined);
        if (hello.gateway === undefined) {
          // A gateway's own CONNECT: authenticated above, nothing north; its own topics get a
          // session of their own when its record has north credentials. Anyone else is a device
          // connecting directly, planned below like on any route.
          if (isGateway)
            return {
              accept: true,
              north: { mode: 'local' },
              mapper: gatewayMapper(),
              quirks,
              dialect: south.name,
              southGateway: { ownNorth: scheme !== undefined },
            };
        } else if (isGateway) {
          // The session of a gateway's own topics, on its own authority; never another gateway.
          if (vars.deviceId !== hello.gateway) return reject(5, 0x87, 'not_bound');
        } else if (bound !== undefined ? bound !== hello.gateway : byGateway)
          return reject(5, 0x87, 'not_bound');
      }
      if (!scheme) return reject(5, 0x87, 'no_north_credentials');
      const gwKey = gateway ? north.gateway?.key(vars) : undefined;
      // A gateway's JWT is one per gateway identity, however many devices share it.
      const jwtId = gwKey ? `gateway:${gwKey}` : (vars.deviceId ?? c.clientId ?? '');
      let connect: IConnectPacket;
      try {
        connect = await buildConnect(scheme, vars, c, jwtId);
      } catch {
        return reject(3, 0x88, 'north_credentials_unavailable');
      }
      const persistent = !gateway && (connect.clean === false || quirks.cleanSession === 'force_false');
      const sessionParams = {
        plan,
        southScheme: found.scheme.scheme,
        northScheme: scheme.scheme,
        southVersion: c.protocolVersion ?? 4,
        northVersion: connect.protocolVersion ?? 4,
        nowUs,
        persistent,
        ...(uplinkOnly ? { downlinks: false } : {}),
        native: hello.listener === 'native-ws' || hello.listener === 'native-wss',
        // The key the client proved: a topic carrying another one is refused.
        ...(topicKeys && found.scheme.credential ? { key: found.vars[found.scheme.credential] } : {}),
        ...(lastValues ? { lastValues } : {}),
        // A device connected directly where gateways are served: attach and detach close it.
        ...(opts.southGateway && hello.gateway === undefined ? { notGateway: true } : {}),
      };
      const echo = persistent && !uplinkOnly ? echoes.take(connect.clientId) : {};
      // A record listing devices: one session per device behind the login's one connection.
      const fleet = resolved.fleet;
      const layout = fleet && !gateway ? fleetLayout(plan) : undefined;
      if (fleet && !layout) return reject(5, 0x87, 'fleet_unsupported');
      const mapper =
        fleet && layout
          ? new FleetSession({
              plan,
              fleet,
              layout,
              ...echo,
              persistent,
              make: (device, shared) =>
                new DialectSession({ ...sessionParams, vars: { ...vars, ...device }, echo: shared }),
            })
          : new DialectSession({ ...sessionParams, vars, ...echo });
      // A will is translated like an uplink; one that does not map to exactly one north
      // publish (or a shared gateway connection) cannot carry it and it is left out.
      if (c.will && quirks.will === 'pass' && !gateway) {
        const w = c.will;
        const o = mapper.translateWill({
          cmd: 'publish',
          topic: w.topic,
          payload: typeof w.payload === 'string' ? Buffer.from(w.payload) : w.payload,
          qos: w.qos ?? 0,
          retain: w.retain ?? false,
          dup: false,
        });
        const out = o.north?.length === 1 ? o.north[0] : undefined;
        if (out) connect.will = { topic: out.topic, payload: out.payload, qos: out.qos, retain: out.retain };
      }
      let northPlan: NorthPlan = { mode: 'direct', connect, ...(opts.url ? { url: opts.url } : {}) };
      if (gateway && north.gateway) {
        const rules = usable(north.upRules, scheme.scheme, vars);
        // A device that attaches with its own JWT: given as deviceJwt, or signed here with its
        // deviceKey and the same claims as the gateway's (ClearBlade: aud = project).
        let deviceJwt = vars.deviceJwt;
        const gwPw = scheme.password;
        const mint = opts.mintJwt;
        const deviceKey = vars.deviceKey;
        const signDevice =
          !deviceJwt && deviceKey && isJwt(gwPw) && mint
            ? () =>
                mint({ ...jwtRequest(gwPw, vars, `device:${vars.deviceId ?? ''}`), privateKey: deviceKey })
            : undefined;
        if (signDevice) {
          try {
            deviceJwt = await signDevice();
          } catch {
            return reject(3, 0x88, 'device_credentials_unavailable');
          }
        }
        const control = (kind: 'attach' | 'detach', jwt = deviceJwt): PublishOut | undefined => {
          const r = rules.find((x) => x.up === kind);
          const topic = r?.tpl.build(vars);
          if (!r || topic === undefined) return undefined;
          const payload = kind === 'attach' && jwt ? JSON.stringify({ authorization: jwt }) : '{}';
          return { topic, payload: Buffer.from(payload), qos: (r.qos ?? 1) as QoS, retain: false };
        };
        const attach = control('attach');
        // A re-attach signs the device's JWT again when it is near its expiry (the signer's cache).
        const freshAttach = signDevice
          ? async (): Promise<PublishOut> => control('attach', await signDevice()) as PublishOut
          : undefined;
        const detach = control('detach');
        const key = gwKey;
        if (!attach || !detach || !key) return reject(5, 0x87, 'no_gateway_identity');
        const errors = north.gateway.errors?.build(vars);
        const subs = mapper.autoSubscribe();
        const pw = scheme.password;
        const mintSync = opts.mintJwtSync;
        // Each (re)connection of the link signs a fresh JWT; it renews before the JWT expires.
        const renewing = isJwt(pw) && mintSync !== undefined;
        // The link is the gateway's, not the device's whose plan happens to open it: its
        // keepalive is fixed (a device's 0 would leave the shared connection without one).
        const link: IConnectPacket = { ...connect, keepalive: GATEWAY_LINK_KEEPALIVE_S };
        const fresh = (): IConnectPacket => {
          if (!renewing) return link;
          try {
            return { ...link, password: Buffer.from(mintSync(jwtRequest(pw, vars, jwtId, true))) };
          } catch {
            return link;
          }
        };
        northPlan = {
          mode: 'gateway',
          key,
          connect: fresh,
          deviceId: vars.deviceId ?? '',
          attach,
          ...(freshAttach ? { freshAttach } : {}),
          detach,
          subscriptions: [...subs],
          gatewaySubscriptions: errors ? [{ topic: errors, qos: 0 }] : [],
          ...(renewing ? { renewAfterMs: renewAfterMs(pw.ttl) } : {}),
          ...(opts.url ? { url: opts.url } : {}),
        };
      }
      return { accept: true, north: northPlan, mapper, quirks, dialect: south.name };
    },
  };
}
