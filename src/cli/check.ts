/**
 * `mqtt-dialect-proxy check [DIR] [--env]`: validates every mapping file in DIR (default
 * ./mappings) against the JSON Schemas and the semantic rules, and every credentials file
 * a route names; prints ALL errors as "file:line:col: message (hint)". Exit 0 valid, 1 not,
 * 2 a usage error (as `translate`).
 * `${NAME}` secrets in credentials files are only required to be set with --env.
 */

import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { fleetErrors } from '../mapping/fleet-index.js';
import { loadMappings } from '../mapping/load.js';
import { parseCredentials } from '../routes/credentials.js';
import { readMappingFiles } from '../routes/files.js';

const USAGE = `usage: mqtt-dialect-proxy check [DIR] [--env]

Validates the mapping files in DIR (default: mappings): dialects/, routes/, pairs/ and the
credentials files routes name. Prints every error as file:line:col: message (hint).
  --env   also require the \${NAME} environment variables of credentials files to be set
Exit code: 0 valid, 1 errors found, 2 usage error.
`;

/** Where a command prints (stdout and stderr unless a caller, such as a test, captures them). */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  let dir = 'mappings';
  let env = false;
  for (const a of argv) {
    if (a === '--help' || a === '-h') {
      io.out(USAGE);
      return 0;
    }
    if (a === '--env') env = true;
    else if (a.startsWith('-')) {
      io.err(`check: unknown option ${a}\n${USAGE}`);
      // Not "errors found": a script running check must not take a typo for a broken mapping.
      return 2;
    } else dir = a;
  }
  const { files, errors } = await readMappingFiles(dir);
  const m = loadMappings(files);
  errors.push(...m.errors);
  const seen = new Set<string>();
  for (const r of m.routes.values()) {
    if (!r.identity.file) continue;
    const path = isAbsolute(r.identity.file) ? r.identity.file : join(dir, r.identity.file);
    if (seen.has(path)) continue;
    seen.add(path);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      errors.push(
        `${r.file}:1:1: credentials file ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'} (fix identity.file)`,
      );
      continue;
    }
    // Without --env every variable reads as a value of its own (x-NAME): two devices whose ids
    // come from different variables are not taken for one.
    const placeholder = new Proxy(
      {},
      { get: (_t, name) => (typeof name === 'string' ? `x-${name}` : undefined) },
    );
    const parsed = parseCredentials(path, text, env ? process.env : (placeholder as NodeJS.ProcessEnv));
    errors.push(...parsed.errors, ...fleetErrors(r.plan, parsed.records, path));
  }
  if (errors.length > 0) {
    for (const e of errors) io.err(`${e}\n`);
    io.err(`${errors.length} error${errors.length === 1 ? '' : 's'} in ${dir}\n`);
    return 1;
  }
  io.out(
    `${dir}: ok (${m.dialects.size} dialects: ${[...m.dialects.keys()].join(', ')}; ${m.routes.size} routes: ${[...m.routes.keys()].join(', ')})\n`,
  );
  return 0;
}
