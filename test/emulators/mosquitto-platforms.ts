/**
 * Platforms that a plain mosquitto can stand in for, as password + ACL configurations for
 * `startMosquitto` (test/helpers/mosquitto.ts):
 * - akenza uplink-secret mode: username = device connector id, password = its secret; the
 *   connector may publish `/up/{secret}/id/{deviceId}[/…]` and read `/down/{secret}/id/{deviceId}[/…]`.
 * - EVRYTHNG with ONE API key: username `authorization`, password = the key; the key may
 *   publish and subscribe the resource topics of its thngs/products/collections.
 * Each configuration also has a `platform` account (read everything uplink, write downlinks)
 * that a test uses to observe uplinks and to send downlinks.
 *
 * Why EVRYTHNG with one key only: every EVRYTHNG client logs in as the same username
 * (`authorization`) with a different API key, and a mosquitto password file holds one password
 * per username; its ACLs are per username too (the dynamic-security plugin has the same
 * model). Several keys with different scopes need the aedes emulator (evrythng-platform.ts).
 * A SUBSCRIBE outside the key's scope behaves as on EVRYTHNG: mosquitto 2.0 grants it and
 * delivers nothing on it.
 */
import { randomBytes } from 'node:crypto';
import { type MosquittoBroker, type MosquittoOptions, startMosquitto } from '../helpers/mosquitto.js';

export interface PlatformAccount {
  username: string;
  password: string;
}

export interface MosquittoPlatformConfig {
  passwords: Record<string, string>;
  acl: string;
  allowAnonymous: false;
  platform: PlatformAccount;
}

/** Ids, keys and secrets go into ACL lines: no whitespace, no wildcard, no level separator. */
function safe(what: string, value: string): string {
  if (value === '' || /[\s+#/\u0000]/.test(value)) {
    throw new Error(`${what} must be non-empty without spaces, "+", "#" or "/"`);
  }
  return value;
}

function platformAccount(given: PlatformAccount | undefined, name: string): PlatformAccount {
  return given ?? { username: name, password: randomBytes(12).toString('hex') };
}

export interface AkenzaSecretOptions {
  connectors: Array<{ id: string; secret: string; deviceIds?: string[] }>;
  platform?: PlatformAccount;
}

export function akenzaSecretConfig(opts: AkenzaSecretOptions): MosquittoPlatformConfig {
  const platform = platformAccount(opts.platform, 'akenza-platform');
  const passwords: Record<string, string> = {
    [safe('platform username', platform.username)]: platform.password,
  };
  const acl: string[] = [];
  for (const c of opts.connectors) {
    passwords[safe('connector id', c.id)] = c.secret;
    const secret = safe('connector secret', c.secret);
    acl.push(`user ${c.id}`);
    for (const dev of c.deviceIds?.map((d) => safe('device id', d)) ?? ['+']) {
      acl.push(
        `topic write /up/${secret}/id/${dev}`,
        `topic write /up/${secret}/id/${dev}/#`,
        `topic read /down/${secret}/id/${dev}`,
        `topic read /down/${secret}/id/${dev}/#`,
      );
    }
    acl.push('');
  }
  acl.push(`user ${platform.username}`, 'topic read /up/#', 'topic write /down/#', '');
  return { passwords, acl: acl.join('\n'), allowAnonymous: false, platform };
}

export interface EvrythngKeyOptions {
  apiKey: string;
  thngs?: string[];
  products?: string[];
  collections?: string[];
  /** An operator key: every topic. */
  operator?: boolean;
  platform?: PlatformAccount;
}

export function evrythngConfig(opts: EvrythngKeyOptions): MosquittoPlatformConfig {
  const platform = platformAccount(opts.platform, 'evrythng-platform');
  if (platform.username === 'authorization')
    throw new Error('the platform account cannot be "authorization"');
  const passwords = {
    authorization: opts.apiKey,
    [safe('platform username', platform.username)]: platform.password,
  };
  const acl = ['user authorization'];
  if (opts.operator) acl.push('topic readwrite #');
  const scopes: Array<[string, string[] | undefined]> = [
    ['thngs', opts.thngs],
    ['products', opts.products],
    ['collections', opts.collections],
  ];
  for (const [kind, ids] of scopes) {
    for (const id of ids ?? []) {
      safe(`${kind} id`, id);
      acl.push(`topic readwrite /${kind}/${id}`, `topic readwrite /${kind}/${id}/#`);
    }
  }
  acl.push('', `user ${platform.username}`, 'topic readwrite #', '');
  return { passwords, acl: acl.join('\n'), allowAnonymous: false, platform };
}

export interface MosquittoPlatform extends MosquittoBroker {
  platform: PlatformAccount;
}

async function start(cfg: MosquittoPlatformConfig, extra: MosquittoOptions): Promise<MosquittoPlatform> {
  const broker = await startMosquitto({
    ...extra,
    passwords: cfg.passwords,
    acl: cfg.acl,
    allowAnonymous: false,
  });
  return Object.assign(broker, { platform: cfg.platform });
}

export function startAkenzaSecretBroker(opts: AkenzaSecretOptions, extra: MosquittoOptions = {}) {
  return start(akenzaSecretConfig(opts), extra);
}

export function startEvrythngBroker(opts: EvrythngKeyOptions, extra: MosquittoOptions = {}) {
  return start(evrythngConfig(opts), extra);
}
