/**
 * JSON Web Tokens (RFC 7519) signed RS256 or ES256 with Node's crypto: the passwords of
 * ClearBlade IoT Core gateways and of akenza device credentials. Verification is here too
 * (the platform emulators use it). Tokens are secrets: nothing in this module logs them, and
 * error reasons are short fixed codes that never quote a token or a claim.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

export type JwtAlg = 'RS256' | 'ES256';
export type JwtClaims = Record<string, unknown> & { iat?: number; exp?: number; aud?: string | string[] };
export type KeyInput = KeyObject | string | Buffer;

export interface DecodedJwt {
  header: { alg?: unknown; typ?: unknown; [k: string]: unknown };
  claims: JwtClaims;
}

export type VerifyFailure =
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'audience';
export type VerifyResult = ({ ok: true } & DecodedJwt) | { ok: false; reason: VerifyFailure };

export interface VerifyOptions {
  /** Accepted algorithms (default both). */
  algorithms?: JwtAlg[];
  /** Required `aud` (a string equal to it, or an array containing it). */
  audience?: string;
  /** Require an `exp` claim (default true). */
  requireExp?: boolean;
  /** Seconds of leeway for exp/iat/nbf (default 0). */
  clockToleranceSec?: number;
  /** Current time in seconds (tests). */
  nowSec?: number;
}

const b64url = (buf: Buffer | string): string => Buffer.from(buf).toString('base64url');

function toPrivateKey(key: KeyInput): KeyObject {
  return typeof key === 'string' || Buffer.isBuffer(key) ? createPrivateKey(key) : key;
}

function toPublicKey(key: KeyInput): KeyObject {
  if (typeof key === 'string' || Buffer.isBuffer(key)) return createPublicKey(key);
  return key.type === 'private' ? createPublicKey(key) : key;
}

/** The algorithm a key signs with: RSA → RS256, EC P-256 → ES256. */
export function algForKey(key: KeyObject): JwtAlg {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error('unsupported JWT key: use an RSA key (RS256) or an EC P-256 key (ES256)');
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Signs `claims` as given. The algorithm defaults to the one the key implies. */
export function signJwt(claims: JwtClaims, privateKey: KeyInput, alg?: JwtAlg): string {
  const key = toPrivateKey(privateKey);
  const algorithm = alg ?? algForKey(key);
  if (algForKey(key) !== algorithm) throw new Error(`JWT key does not match algorithm ${algorithm}`);
  const input = `${b64url(JSON.stringify({ alg: algorithm, typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  const signature =
    algorithm === 'ES256'
      ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(input), key);
  return `${input}.${b64url(signature)}`;
}

/** Header and claims without checking the signature; undefined when not a JWT. */
export function decodeJwt(token: string): DecodedJwt | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const header = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as unknown;
    const claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as unknown;
    if (!isObject(header) || !isObject(claims)) return undefined;
    return { header, claims };
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks signature, algorithm, expiry, not-before and audience. Never throws on bad tokens. */
export function verifyJwt(token: string, publicKey: KeyInput, opts: VerifyOptions = {}): VerifyResult {
  const decoded = decodeJwt(token);
  if (!decoded) return { ok: false, reason: 'malformed' };
  const { header, claims } = decoded;
  const algorithms = opts.algorithms ?? ['RS256', 'ES256'];
  const alg = header.alg;
  if (alg !== 'RS256' && alg !== 'ES256') return { ok: false, reason: 'algorithm' };
  if (!algorithms.includes(alg)) return { ok: false, reason: 'algorithm' };
  let key: KeyObject;
  try {
    key = toPublicKey(publicKey);
    if (algForKey(key) !== alg) return { ok: false, reason: 'algorithm' };
  } catch {
    return { ok: false, reason: 'algorithm' };
  }
  const dot = token.lastIndexOf('.');
  const input = Buffer.from(token.slice(0, dot));
  const signature = Buffer.from(token.slice(dot + 1), 'base64url');
  let valid = false;
  try {
    valid =
      alg === 'ES256'
        ? verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature)
        : verify('sha256', input, key, signature);
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'signature' };
  const now = opts.nowSec ?? nowSeconds();
  const leeway = opts.clockToleranceSec ?? 0;
  const { exp, nbf, iat } = claims;
  if (exp !== undefined && typeof exp !== 'number') return { ok: false, reason: 'malformed' };
  if (exp === undefined && opts.requireExp !== false) return { ok: false, reason: 'malformed' };
  if (typeof exp === 'number' && exp + leeway <= now) return { ok: false, reason: 'expired' };
  if (typeof nbf === 'number' && nbf - leeway > now) return { ok: false, reason: 'not_yet_valid' };
  if (typeof iat === 'number' && iat - leeway > now) return { ok: false, reason: 'not_yet_valid' };
  if (opts.audience !== undefined) {
    const aud = claims.aud;
    const match = Array.isArray(aud) ? aud.includes(opts.audience) : aud === opts.audience;
    if (!match) return { ok: false, reason: 'audience' };
  }
  return { ok: true, header, claims };
}

/** Like signJwt, but the signature is computed on libuv's thread pool (the event loop keeps running). */
export function signJwtAsync(claims: JwtClaims, privateKey: KeyInput, alg?: JwtAlg): Promise<string> {
  return new Promise((resolve, reject) => {
    let key: KeyObject;
    let algorithm: JwtAlg;
    try {
      key = toPrivateKey(privateKey);
      algorithm = alg ?? algForKey(key);
      if (algForKey(key) !== algorithm) throw new Error(`JWT key does not match algorithm ${algorithm}`);
    } catch (err) {
      reject(err);
      return;
    }
    const input = `${b64url(JSON.stringify({ alg: algorithm, typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
    const done = (err: Error | null, signature: Buffer): void => {
      if (err) reject(err);
      else resolve(`${input}.${b64url(signature)}`);
    };
    if (algorithm === 'ES256') sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, done);
    else sign('sha256', Buffer.from(input), key, done);
  });
}
