/**
 * Compiles a dialect's auth schemes: south schemes (how a device is recognised from its
 * CONNECT: client id, username, password, certificate CN) and north schemes (how the north
 * CONNECT is written: templates, literals, a JWT minted per identity).
 */
import { compileText, textVars } from './codecs.js';
import type { RawDialect } from './compile.js';
import type { JwtSpec, NorthScheme, SouthScheme } from './dialect.js';
import type { Path } from './source.js';
import { parseTemplate, type Template, type Vars } from './template.js';

function listOf(v: string | string[] | undefined): string[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

export function compileSouthAuth(
  d: RawDialect,
  identity: Set<string>,
  err: (p: Path, m: string, h?: string) => void,
): SouthScheme[] {
  return (d.auth?.south ?? []).map((s, i) => {
    const vars = new Set<string>();
    const opt = new Set<string>();
    const tpls = (field: 'client_id' | 'username' | 'password'): Template[] | undefined => {
      const raw = s[field];
      const l = typeof raw === 'object' && !Array.isArray(raw) ? undefined : listOf(raw);
      if (!l) return undefined;
      const out: Template[] = [];
      const seen: string[][] = [];
      l.forEach((text, j) => {
        const t = text === '' ? parseEmpty() : parseTemplate(text);
        if (typeof t === 'string') {
          err(['auth', 'south', i, field, ...(Array.isArray(s[field]) ? [j] : [])], `bad template: ${t}`);
          return;
        }
        for (const c of t.captures)
          if (!identity.has(c))
            err(['auth', 'south', i, field], `unknown variable {${c}}`, `declare it under 'identity:'`);
        seen.push([...t.captures]);
        out.push(t);
      });
      const all = new Set(seen.flat());
      for (const c of all) (seen.every((x) => x.includes(c)) ? vars : opt).add(c);
      return out;
    };
    const clientId = tpls('client_id');
    const username = tpls('username');
    const password = tpls('password');
    let commonName: Template | undefined;
    if (s.common_name !== undefined) {
      const t = parseTemplate(s.common_name);
      if (typeof t === 'string') err(['auth', 'south', i, 'common_name'], `bad template: ${t}`);
      else {
        commonName = t;
        for (const c of t.captures) vars.add(c);
      }
    }
    let jwt: SouthScheme['jwt'];
    const pw = s.password;
    if (typeof pw === 'object' && !Array.isArray(pw)) {
      if (!identity.has(pw.jwt.key)) {
        err(
          ['auth', 'south', i, 'password', 'jwt', 'key'],
          `unknown variable '${pw.jwt.key}'`,
          `the variable holding the device's public key, declared under 'identity:'`,
        );
      }
      const aud = pw.jwt.audience;
      for (const v of aud ? textVars(aud) : []) {
        if (!identity.has(v))
          err(
            ['auth', 'south', i, 'password', 'jwt', 'audience'],
            `unknown variable {${v}}`,
            `declare it under 'identity:'`,
          );
      }
      jwt = { key: pw.jwt.key, audience: aud ? compileText(aud) : undefined };
    }
    const credential = commonName?.captures[0] ?? password?.[0]?.captures[0];
    if (credential === undefined && !jwt) {
      err(
        ['auth', 'south', i],
        `scheme '${s.scheme}' proves nothing`,
        `give it a password variable, a common_name or a password: { jwt: ... }`,
      );
    }
    return { scheme: s.scheme, clientId, username, password, commonName, credential, jwt, vars: [...vars] };
  });
}

/** The template matching only the empty string. */
function parseEmpty(): Template {
  return {
    source: '',
    captures: [],
    multi: undefined,
    literal: true,
    lone: undefined,
    match: (levels) => levels.length === 1 && levels[0] === '',
    build: () => '',
    filter: () => '',
  };
}

export function compileNorthAuth(
  d: RawDialect,
  identity: Set<string>,
  err: (p: Path, m: string, h?: string) => void,
): NorthScheme[] {
  const known = (v: string) => identity.has(v) || v === 'clientId';
  return (d.auth?.north ?? []).map((s, i) => {
    const vars = new Set<string>();
    const text = (field: 'client_id' | 'username', t: string | undefined) => {
      if (t === undefined) return undefined;
      for (const v of textVars(t)) {
        if (!known(v))
          err(['auth', 'north', i, field], `unknown variable {${v}}`, `declare it under 'identity:'`);
        if (v !== 'clientId') vars.add(v);
      }
      return compileText(t);
    };
    let password: NorthScheme['password'];
    if (typeof s.password === 'string') {
      for (const v of textVars(s.password)) {
        if (!known(v))
          err(['auth', 'north', i, 'password'], `unknown variable {${v}}`, `declare it under 'identity:'`);
        vars.add(v);
      }
      password = compileText(s.password);
    } else if (s.password) {
      const j = s.password.jwt;
      if (!identity.has(j.key))
        err(
          ['auth', 'north', i, 'password', 'jwt', 'key'],
          `unknown variable '${j.key}'`,
          `the variable holding the private key`,
        );
      vars.add(j.key);
      for (const [claim, v] of Object.entries(j.claims ?? {}))
        if (typeof v === 'string')
          for (const x of textVars(v)) {
            if (!identity.has(x))
              err(
                ['auth', 'north', i, 'password', 'jwt', 'claims', claim],
                `unknown variable {${x}}`,
                `declare it under 'identity:'`,
              );
            vars.add(x);
          }
      password = {
        key: j.key,
        alg: j.alg ?? 'RS256',
        claims: compileClaims(j.claims ?? {}),
        ttl: j.ttl ?? 3600,
      } satisfies JwtSpec;
    }
    return {
      scheme: s.scheme,
      clientId: text('client_id', s.client_id),
      username: text('username', s.username),
      password,
      vars: [...vars],
    };
  });
}

/** JWT claims whose string values may hold `{var}`s, compiled once: one object per call. */
function compileClaims(claims: Record<string, unknown>): (v: Readonly<Vars>) => Record<string, unknown> {
  const parts = Object.entries(claims).map(
    ([k, x]) => [k, typeof x === 'string' ? compileText(x) : () => x] as const,
  );
  return (v) => {
    const out: Record<string, unknown> = {};
    for (const [k, f] of parts) out[k] = f(v);
    return out;
  };
}
