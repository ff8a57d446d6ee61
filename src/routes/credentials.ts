/**
 * Credentials files: south identity → north identity and secrets, in YAML
 * (`- south: {...}\n  north: {...}`) or CSV (header `south.token,north.thngId,...`).
 * Values may be `${NAME}`: taken from the environment, an error when unset.
 */
import { readFile } from 'node:fs/promises';
import type { CredentialRecord } from '../mapping/identity.js';
import { validate } from '../mapping/schema.js';
import { parseSource, Reporter } from '../mapping/source.js';

const ENV = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function expand(v: string, env: NodeJS.ProcessEnv, missing: Set<string>): string {
  return v.replace(ENV, (_, name: string) => {
    const x = env[name];
    if (x === undefined) {
      missing.add(name);
      return '';
    }
    return x;
  });
}

export function parseCredentials(
  file: string,
  text: string,
  env: NodeJS.ProcessEnv = process.env,
): { records: CredentialRecord[]; errors: string[] } {
  const report = new Reporter();
  const records: CredentialRecord[] = [];
  const csv = file.endsWith('.csv');
  const rows: Array<{
    south: Record<string, unknown>;
    north: Record<string, unknown>;
    line: number;
    col: number;
    at?: (side: string, key: string) => string;
  }> = [];
  if (csv) {
    const lines = text.split(/\r?\n/);
    const header = (lines[0] ?? '').split(',').map((h) => h.trim());
    header.forEach((h, i) => {
      if (!/^(south|north)\.[A-Za-z_][A-Za-z0-9_]*$/.test(h))
        report.errors.push(`${file}:1:${i + 1}: bad column '${h}' (columns are south.NAME or north.NAME)`);
    });
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i] ?? '';
      if (line.trim() === '' || line.startsWith('#')) continue;
      const cells = line.split(',').map((c) => c.trim());
      if (cells.length !== header.length) {
        report.errors.push(`${file}:${i + 1}:1: ${cells.length} cells, the header has ${header.length}`);
        continue;
      }
      const row = {
        south: {} as Record<string, unknown>,
        north: {} as Record<string, unknown>,
        line: i + 1,
        col: 1,
      };
      header.forEach((h, j) => {
        const [side, name] = h.split('.') as ['south' | 'north', string];
        if (cells[j] !== '') row[side][name] = cells[j];
      });
      rows.push(row);
    }
  } else {
    const src = parseSource(file, text, report);
    if (src.value !== undefined && validate('credentials', src, report)) {
      (src.value as Array<{ south: Record<string, unknown>; north: Record<string, unknown> }>).forEach(
        (r, i) => {
          const at = src.pos([i]);
          const where = (side: string, key: string) => {
            const p = src.pos([i, side, key]);
            return `${p.line}:${p.col}`;
          };
          rows.push({ ...r, line: at.line, col: at.col, at: where });
        },
      );
    }
  }
  for (const r of rows) {
    let bad = false;
    const side = (name: 'south' | 'north', o: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(o).map(([k, v]) => {
          const missing = new Set<string>();
          const x = expand(String(v), env, missing);
          if (missing.size > 0) {
            bad = true;
            const pos = r.at ? r.at(name, k) : `${r.line}:${r.col}`;
            report.errors.push(
              `${file}:${pos}: environment variable${missing.size > 1 ? 's' : ''} ${[...missing].join(', ')} not set (export it before starting the proxy)`,
            );
          }
          return [k, x];
        }),
      );
    const rec = { south: side('south', r.south), north: side('north', r.north) };
    if (!bad) records.push(rec);
  }
  return { records, errors: report.errors };
}

export async function readCredentials(
  file: string,
): Promise<{ records: CredentialRecord[]; errors: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return {
      records: [],
      errors: [
        `${file}:1:1: cannot read the credentials file: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      ],
    };
  }
  return parseCredentials(file, text);
}
