/**
 * A JWT signer with a cache: the same identity (gateway, device) with the same key and claims
 * gets the cached token until it comes within `refreshMarginSec` of its expiry, then a freshly
 * signed one. A reconnect storm therefore costs one signature per identity, not one per CONNECT.
 * Tokens are held in memory only and never logged.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { algForKey, type JwtAlg, type KeyInput, nowSeconds, signJwt, signJwtAsync } from './jwt.js';

export interface SignRequest {
  /** Cache identity, e.g. a gateway id or a device id. */
  id: string;
  privateKey: KeyInput;
  /** Defaults to what the key implies (RSA → RS256, EC P-256 → ES256). */
  alg?: JwtAlg;
  /** Claims besides iat and exp, e.g. `{ aud: projectId }`. */
  claims?: Record<string, unknown>;
  /** Lifetime of a new token in seconds (default: the signer's ttlSec). */
  ttlSec?: number;
}

export interface JwtSignerOptions {
  /** Lifetime of a signed token in seconds (default 3600). */
  ttlSec?: number;
  /**
   * A cached token is replaced once it expires within this many seconds (default 300), or
   * within a fifth of its lifetime when that is shorter (a 60 s token is re-signed after 48 s).
   */
  refreshMarginSec?: number;
  /** Clock in seconds (tests). */
  now?: () => number;
  /** Metrics hook, called once per token handed out. */
  onSign?: (alg: JwtAlg, result: 'signed' | 'cached') => void;
  /** Largest number of cached identities; the oldest entries go first (default 100,000). */
  maxEntries?: number;
}

interface Entry {
  token: string;
  exp: number;
  /** Refresh margin of this token: the signer's, or a fifth of a shorter lifetime. */
  margin: number;
  alg: JwtAlg;
  keyRef: KeyInput;
  claimsJson: string;
}

export class JwtSigner {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<string>>();
  private readonly parsedKeys = new Map<string, KeyObject>();
  private readonly ttlSec: number;
  private readonly marginSec: number;
  private readonly now: () => number;
  private readonly onSign: JwtSignerOptions['onSign'];
  private readonly maxEntries: number;

  constructor(opts: JwtSignerOptions = {}) {
    this.ttlSec = opts.ttlSec ?? 3600;
    this.marginSec = opts.refreshMarginSec ?? 300;
    if (!(this.ttlSec > 0)) throw new Error('JWT lifetime (ttlSec) must be positive');
    if (!(this.marginSec >= 0 && this.marginSec < this.ttlSec)) {
      throw new Error('JWT refresh margin must be at least 0 and shorter than the token lifetime');
    }
    this.now = opts.now ?? nowSeconds;
    this.onSign = opts.onSign;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /** A valid token for this identity: cached when fresh enough, otherwise signed now. */
  token(req: SignRequest): string {
    const hit = this.lookup(req);
    if (hit) return hit;
    const { claims, key, alg, exp, margin, claimsJson } = this.prepare(req);
    const token = signJwt(claims, key, alg);
    this.store(req, { token, exp, margin, alg, keyRef: req.privateKey, claimsJson });
    this.onSign?.(alg, 'signed');
    return token;
  }

  /**
   * Same as token(), but a new signature is computed off the event loop, and concurrent calls
   * for one identity share a single signing.
   */
  async tokenAsync(req: SignRequest): Promise<string> {
    const hit = this.lookup(req);
    if (hit) return hit;
    const inflight = this.pending.get(req.id);
    if (inflight) {
      await inflight.catch(() => undefined);
      const again = this.lookup(req);
      if (again) return again;
    }
    const { claims, key, alg, exp, margin, claimsJson } = this.prepare(req);
    const p = signJwtAsync(claims, key, alg).then((token) => {
      this.store(req, { token, exp, margin, alg, keyRef: req.privateKey, claimsJson });
      return token;
    });
    this.pending.set(req.id, p);
    try {
      const token = await p;
      this.onSign?.(alg, 'signed');
      return token;
    } finally {
      if (this.pending.get(req.id) === p) this.pending.delete(req.id);
    }
  }

  /** Expiry (seconds since the epoch) of the cached token for this identity. */
  expiresAt(id: string): number | undefined {
    return this.cache.get(id)?.exp;
  }

  invalidate(id: string): void {
    this.cache.delete(id);
  }

  get size(): number {
    return this.cache.size;
  }

  private lookup(req: SignRequest): string | undefined {
    const entry = this.cache.get(req.id);
    if (!entry) return undefined;
    if (entry.keyRef !== req.privateKey && !sameKeyText(entry.keyRef, req.privateKey)) return undefined;
    if (req.alg !== undefined && req.alg !== entry.alg) return undefined;
    if (entry.claimsJson !== JSON.stringify(req.claims ?? {})) return undefined;
    if (entry.exp - entry.margin <= this.now()) return undefined;
    this.onSign?.(entry.alg, 'cached');
    return entry.token;
  }

  private prepare(req: SignRequest) {
    const key = this.parse(req.privateKey);
    const alg = req.alg ?? algForKey(key);
    const iat = this.now();
    const ttl = req.ttlSec ?? this.ttlSec;
    if (!(ttl > 0)) throw new Error('JWT lifetime (ttlSec) must be positive');
    const exp = iat + ttl;
    const margin = Math.min(this.marginSec, ttl / 5);
    const claimsJson = JSON.stringify(req.claims ?? {});
    return { key, alg, exp, margin, claimsJson, claims: { ...(req.claims ?? {}), iat, exp } };
  }

  private parse(input: KeyInput): KeyObject {
    if (typeof input !== 'string' && !Buffer.isBuffer(input)) return input;
    const text = input.toString();
    let key = this.parsedKeys.get(text);
    if (!key) {
      key = createPrivateKey(text);
      if (this.parsedKeys.size >= this.maxEntries) this.evictOldest(this.parsedKeys);
      this.parsedKeys.set(text, key);
    }
    return key;
  }

  private store(req: SignRequest, entry: Entry): void {
    this.cache.delete(req.id);
    if (this.cache.size >= this.maxEntries) this.evictOldest(this.cache);
    this.cache.set(req.id, entry);
  }

  private evictOldest<V>(map: Map<string, V>): void {
    const first = map.keys().next();
    if (!first.done) map.delete(first.value);
  }
}

function sameKeyText(a: KeyInput, b: KeyInput): boolean {
  const isText = (k: KeyInput): k is string | Buffer => typeof k === 'string' || Buffer.isBuffer(k);
  return isText(a) && isText(b) && a.toString() === b.toString();
}
