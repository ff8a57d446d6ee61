import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeJwt, signJwt, signJwtAsync, verifyJwt } from '../../src/auth/jwt.js';
import { JwtSigner } from '../../src/auth/signer.js';
import { verifyDeviceJwt } from '../../src/routes/index.js';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const ecOther = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const now = Math.floor(Date.now() / 1000);

describe('jwt sign and verify', () => {
  it('signs RS256 and ES256 tokens that verify with the matching public key', () => {
    for (const [pair, alg] of [
      [rsa, 'RS256'],
      [ec, 'ES256'],
    ] as const) {
      const token = signJwt({ iat: now, exp: now + 600, aud: 'proj-1' }, pair.privateKey);
      const res = verifyJwt(token, pair.publicKey, { audience: 'proj-1' });
      assert.equal(res.ok, true, alg);
      if (res.ok) {
        assert.equal(res.header.alg, alg);
        assert.equal(res.claims.aud, 'proj-1');
      }
    }
  });

  it('ES256 signatures are 64-byte IEEE P1363 (r||s), as JWS requires', () => {
    const token = signJwt({ exp: now + 60 }, ec.privateKey);
    const sig = Buffer.from(token.split('.')[2] ?? '', 'base64url');
    assert.equal(sig.length, 64);
  });

  it('rejects a wrong key, an expired token, a wrong audience and a tampered payload', () => {
    const token = signJwt({ iat: now, exp: now + 600, aud: 'proj-1' }, ec.privateKey);
    assert.deepEqual(verifyJwt(token, ecOther.publicKey), { ok: false, reason: 'signature' });
    assert.deepEqual(verifyJwt(token, rsa.publicKey), { ok: false, reason: 'algorithm' });
    assert.deepEqual(verifyJwt(token, ec.publicKey, { audience: 'other' }), {
      ok: false,
      reason: 'audience',
    });
    assert.deepEqual(verifyJwt(token, ec.publicKey, { algorithms: ['RS256'] }), {
      ok: false,
      reason: 'algorithm',
    });
    const expired = signJwt({ iat: now - 1200, exp: now - 1, aud: 'proj-1' }, ec.privateKey);
    assert.deepEqual(verifyJwt(expired, ec.publicKey), { ok: false, reason: 'expired' });
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ exp: now + 9999, aud: 'proj-1' })).toString('base64url')}.${s}`;
    assert.deepEqual(verifyJwt(forged, ec.publicKey), { ok: false, reason: 'signature' });
    assert.deepEqual(verifyJwt('not-a-jwt', ec.publicKey), { ok: false, reason: 'malformed' });
    const noneAlg = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`;
    assert.deepEqual(verifyJwt(noneAlg, ec.publicKey), { ok: false, reason: 'algorithm' });
  });

  it('signs off the event loop with the same result format', async () => {
    const token = await signJwtAsync({ exp: now + 60, aud: 'a' }, rsa.privateKey);
    assert.equal(verifyJwt(token, rsa.publicKey, { audience: 'a' }).ok, true);
    assert.equal(decodeJwt(token)?.header.alg, 'RS256');
  });

  it('produces tokens that openssl verifies (interoperability with a second implementation)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwt-'));
    try {
      for (const pair of [rsa, ec]) {
        const token = signJwt({ exp: now + 60 }, pair.privateKey);
        const [h, p, s] = token.split('.') as [string, string, string];
        writeFileSync(join(dir, 'pub.pem'), pair.publicKey.export({ type: 'spki', format: 'pem' }));
        writeFileSync(join(dir, 'data'), `${h}.${p}`);
        let der: Buffer = Buffer.from(s, 'base64url');
        if (pair === ec) der = p1363ToDer(der);
        writeFileSync(join(dir, 'sig'), der);
        const out = execFileSync(
          'openssl',
          [
            'dgst',
            '-sha256',
            '-verify',
            join(dir, 'pub.pem'),
            '-signature',
            join(dir, 'sig'),
            join(dir, 'data'),
          ],
          { encoding: 'utf8' },
        );
        assert.match(out, /Verified OK/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function p1363ToDer(sig: Buffer): Buffer {
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(sig.subarray(0, 32)), int(sig.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe('JwtSigner cache', () => {
  it('hands out the cached token until the refresh margin, then re-signs', () => {
    let clock = 1_000_000;
    const events: string[] = [];
    const signer = new JwtSigner({
      ttlSec: 1200,
      refreshMarginSec: 120,
      now: () => clock,
      onSign: (alg, result) => events.push(`${alg}:${result}`),
    });
    const req = { id: 'gw-1', privateKey: ec.privateKey, claims: { aud: 'proj' } };
    const t1 = signer.token(req);
    const t2 = signer.token(req);
    assert.equal(t1, t2);
    const decoded = decodeJwt(t1);
    assert.equal(decoded?.claims.iat, 1_000_000);
    assert.equal(decoded?.claims.exp, 1_001_200);
    assert.equal(decoded?.claims.aud, 'proj');
    clock += 1200 - 121;
    assert.equal(signer.token(req), t1, 'still outside the margin');
    clock += 1;
    const t3 = signer.token(req);
    assert.notEqual(t3, t1, 'within the margin: re-signed');
    assert.equal(decodeJwt(t3)?.claims.exp, clock + 1200);
    assert.deepEqual(events, ['ES256:signed', 'ES256:cached', 'ES256:cached', 'ES256:signed']);
  });

  it('a short per-request lifetime is cached for four fifths of it', () => {
    let clock = 5000;
    const signer = new JwtSigner({ ttlSec: 3600, refreshMarginSec: 300, now: () => clock });
    const req = { id: 'short', privateKey: ec.privateKey, ttlSec: 60 };
    const t1 = signer.token(req);
    assert.equal(decodeJwt(t1)?.claims.exp, 5060);
    clock += 47;
    assert.equal(signer.token(req), t1);
    clock += 1;
    assert.notEqual(signer.token(req), t1);
  });

  it('re-signs when the claims or the key change, and keeps identities apart', () => {
    const signer = new JwtSigner({ ttlSec: 600, refreshMarginSec: 60 });
    const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const a = signer.token({ id: 'd1', privateKey: pem, claims: { aud: 'x' } });
    assert.equal(signer.token({ id: 'd1', privateKey: pem, claims: { aud: 'x' } }), a);
    assert.notEqual(signer.token({ id: 'd1', privateKey: pem, claims: { aud: 'y' } }), a);
    const b = signer.token({ id: 'd2', privateKey: ec.privateKey });
    assert.equal(verifyJwt(b, ec.publicKey).ok, true);
    const c = signer.token({ id: 'd2', privateKey: ecOther.privateKey });
    assert.equal(verifyJwt(c, ecOther.publicKey).ok, true);
    assert.equal(signer.size, 2);
  });

  it('a storm of concurrent async requests for one identity signs once', async () => {
    const results: string[] = [];
    const signer = new JwtSigner({ onSign: (_alg, r) => results.push(r) });
    const req = { id: 'gw', privateKey: rsa.privateKey, claims: { aud: 'p' } };
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => signer.tokenAsync(req)));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(results.filter((r) => r === 'signed').length, 1);
    assert.equal(results.filter((r) => r === 'cached').length, 999);
  });

  it('refuses a key that is neither RSA nor EC P-256, and a bad margin', () => {
    const ed = generateKeyPairSync('ed25519');
    assert.throws(() => new JwtSigner().token({ id: 'x', privateKey: ed.privateKey }), /unsupported JWT key/);
    assert.throws(() => new JwtSigner({ ttlSec: 60, refreshMarginSec: 60 }), /refresh margin/);
  });
});

describe('device JWTs as routes verify them', () => {
  it('an audience template that came out empty refuses the token instead of checking nothing', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt({ iat: now, exp: now + 600, aud: 'project-a' }, privateKey);
    assert.equal(verifyDeviceJwt(token, pem, 'project-a'), undefined, 'the right audience');
    assert.equal(verifyDeviceJwt(token, pem, undefined), undefined, 'a dialect without an audience');
    assert.notEqual(verifyDeviceJwt(token, pem, 'project-b'), undefined, 'another audience');
    assert.equal(verifyDeviceJwt(token, pem, ''), 'audience', 'an empty audience');
  });
});
