/**
 * The JWT minter given to translating routes: one caching signer per loaded route (kept
 * across reloads), so a reconnect storm costs one signature per identity, not one per CONNECT.
 * `alg: auto` in a dialect lets the key decide (RSA → RS256, EC P-256 → ES256).
 * Tokens are never logged; only the algorithm and the cache result are counted. A key that
 * cannot sign (not a PEM private key, neither RSA nor EC P-256, not the dialect's algorithm) is
 * logged as a warning once per identity, naming the identity and the cause, never the key:
 * each CONNECT it refuses is otherwise only an info line `north_credentials_unavailable`.
 */
import type { JwtAlg } from '../auth/jwt.js';
import { JwtSigner, type SignRequest } from '../auth/signer.js';
import type { Logger } from '../log/logger.js';
import type { MintJwt, MintJwtSync } from '../mapping/engine.js';
import type { Metrics } from '../metrics/metrics.js';

export interface JwtMinter {
  mintJwt: MintJwt;
  mintJwtSync: MintJwtSync;
  readonly signer: JwtSigner;
}

type Req = Parameters<MintJwt>[0];

function request(req: Req): SignRequest {
  const alg: JwtAlg | undefined = req.alg === 'RS256' || req.alg === 'ES256' ? req.alg : undefined;
  return {
    id: req.id,
    privateKey: req.privateKey,
    ...(alg ? { alg } : {}),
    claims: req.claims,
    ttlSec: req.ttlSec,
  };
}

export function createJwtMinter(metrics?: Metrics, log?: Logger): JwtMinter {
  const signer = new JwtSigner({
    // A token is replaced once within 5 minutes of its expiry (or a fifth of a short lifetime).
    refreshMarginSec: 300,
    ttlSec: 3600,
    onSign: (alg, result) => metrics?.jwtSigningsTotal.labels(alg, result).inc(),
  });
  const failing = new FailingKeys(log);
  return {
    signer,
    mintJwt: (req) =>
      signer.tokenAsync(request(req)).then(
        (token) => failing.signed(req.id, token),
        (err: unknown) => failing.failed(req, err),
      ),
    mintJwtSync: (req) => {
      // A renewal or reconnect wants a token with its whole lifetime ahead.
      if (req.fresh) signer.invalidate(req.id);
      try {
        return failing.signed(req.id, signer.token(request(req)));
      } catch (err) {
        return failing.failed(req, err);
      }
    },
  };
}

/** Identities whose key failed to sign, each reported once until it signs again (bounded). */
class FailingKeys {
  private readonly ids = new Set<string>();

  constructor(private readonly log: Logger | undefined) {}

  signed(id: string, token: string): string {
    if (this.ids.size > 0) this.ids.delete(id);
    return token;
  }

  failed(req: Req, err: unknown): never {
    if (this.log && !this.ids.has(req.id)) {
      if (this.ids.size >= 10_000) this.ids.clear();
      this.ids.add(req.id);
      // The cause is node's error code or the signer's own message: neither quotes the key.
      const e = err as NodeJS.ErrnoException;
      this.log.warn(
        { identity: req.id, alg: req.alg, err: e.code ?? e.message },
        'north JWT cannot be signed: the private key of this identity is not usable; its devices are refused until it is fixed',
      );
    }
    throw err;
  }
}
