/**
 * The JWT minter given to translating routes: one caching signer per loaded route (kept
 * across reloads), so a reconnect storm costs one signature per identity, not one per CONNECT.
 * `alg: auto` in a dialect lets the key decide (RSA → RS256, EC P-256 → ES256).
 * Tokens are never logged; only the algorithm and the cache result are counted.
 */
import type { JwtAlg } from '../auth/jwt.js';
import { JwtSigner, type SignRequest } from '../auth/signer.js';
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

export function createJwtMinter(metrics?: Metrics): JwtMinter {
  const signer = new JwtSigner({
    // A token is replaced once within 5 minutes of its expiry (or a fifth of a short lifetime).
    refreshMarginSec: 300,
    ttlSec: 3600,
    onSign: (alg, result) => metrics?.jwtSigningsTotal.labels(alg, result).inc(),
  });
  return {
    signer,
    mintJwt: (req) => signer.tokenAsync(request(req)),
    mintJwtSync: (req) => {
      // A renewal or reconnect wants a token with its whole lifetime ahead.
      if (req.fresh) signer.invalidate(req.id);
      return signer.token(request(req));
    },
  };
}
