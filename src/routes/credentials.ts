/**
 * Credentials files: south identity → north identity and secrets, in YAML
 * (`- south: {...}\n  north: {...}`), JSON (the same list; JSON is YAML too, so a `.yaml` file
 * may hold it) or CSV (header `south.token,north.thngId,...`). Values may be `${NAME}`: taken
 * from the environment, an error when unset. A YAML or JSON record may list many devices for
 * one login (`devices: [{deviceId, thngId}, ...]`, `groups: {name: [deviceId, ...]}`); CSV has
 * one row per record and no lists, so it cannot.
 *
 * A file that is JSON and has no error is read with JSON.parse: the YAML parser, which keeps
 * every node's position for line-numbered errors, is some ten times slower and holds ~14 KB
 * per record while it runs (BENCHMARKS.md, finding 11). Any error sends the file through the
 * YAML parser, so every error is still reported with its line.
 */
import { readFile } from 'node:fs/promises';
import type { CredentialRecord } from '../mapping/identity.js';
import { validate } from '../mapping/schema.js';
import { parseSource, plainSource, Reporter } from '../mapping/source.js';

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

interface Row {
  south: Record<string, unknown>;
  north: Record<string, unknown>;
  devices?: Array<Record<string, unknown>>;
  groups?: Record<string, unknown[]>;
  line: number;
  col: number;
  /** Position of a value: `[side, key]` or `['devices', i, key]` within the record. */
  at?: (...path: Array<string | number>) => string;
}

interface Parsed {
  records: CredentialRecord[];
  errors: string[];
}

/** The records of a file that is JSON and valid, or undefined (then the YAML path reports). */
function fromJson(file: string, text: string, env: NodeJS.ProcessEnv): Parsed | undefined {
  const first = text.trimStart()[0];
  if (first !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!validate('credentials', plainSource(file, value), new Reporter())) return undefined;
  const rows = (value as Array<Omit<Row, 'line' | 'col'>>).map((r) => ({ ...r, line: 1, col: 1 }));
  const out = finish(file, rows, env, new Reporter());
  return out.errors.length === 0 ? out : undefined;
}

export function parseCredentials(file: string, text: string, env: NodeJS.ProcessEnv = process.env): Parsed {
  const csv = file.endsWith('.csv');
  if (!csv) {
    const fast = fromJson(file, text, env);
    if (fast) return fast;
  }
  const report = new Reporter();
  const rows: Row[] = [];
  if (csv) {
    const lines = text.split(/\r?\n/);
    const header = (lines[0] ?? '').split(',').map((h) => h.trim());
    // A file without its header line has a record there, secrets included: an error names a
    // column by its position, never by what the line holds.
    let headerOk = true;
    header.forEach((h, i) => {
      if (!/^(south|north)\.[A-Za-z_][A-Za-z0-9_]*$/.test(h)) {
        headerOk = false;
        report.errors.push(
          `${file}:1:${i + 1}: header column ${i + 1} is not south.NAME or north.NAME (the first line of a CSV credentials file is its header; a record listing devices needs YAML or JSON)`,
        );
      }
    });
    // Without a valid header no row can be read (nor its cells reported).
    for (let i = 1; headerOk && i < lines.length; i++) {
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
        // Defined, not assigned: a column named __proto__ is a field like any other (as in
        // YAML and JSON), where an assignment would drop it without a word.
        if (cells[j] !== '')
          Object.defineProperty(row[side], name, {
            value: cells[j],
            enumerable: true,
            writable: true,
            configurable: true,
          });
      });
      rows.push(row);
    }
  } else {
    const src = parseSource(file, text, report);
    if (src.value !== undefined && validate('credentials', src, report)) {
      (src.value as Array<{ south: Record<string, unknown>; north: Record<string, unknown> }>).forEach(
        (r, i) => {
          const at = src.pos([i]);
          const where = (...path: Array<string | number>) => {
            const p = src.pos([i, ...path]);
            return `${p.line}:${p.col}`;
          };
          rows.push({ ...r, line: at.line, col: at.col, at: where });
        },
      );
    }
  }
  return finish(file, rows, env, report);
}

/** Environment values put in; a record with an unset variable is left out and reported. */
function finish(file: string, rows: readonly Row[], env: NodeJS.ProcessEnv, report: Reporter): Parsed {
  const records: CredentialRecord[] = [];
  for (const r of rows) {
    let bad = false;
    const side = (name: 'south' | 'north' | number, o: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(o).map(([k, v]) => {
          const missing = new Set<string>();
          const x = expand(String(v), env, missing);
          if (missing.size > 0) {
            bad = true;
            const path = typeof name === 'number' ? ['devices', name, k] : [name, k];
            const pos = r.at ? r.at(...path) : `${r.line}:${r.col}`;
            report.errors.push(
              `${file}:${pos}: environment variable${missing.size > 1 ? 's' : ''} ${[...missing].join(', ')} not set (export it before starting the proxy)`,
            );
          }
          return [k, x];
        }),
      );
    const rec: CredentialRecord = { south: side('south', r.south), north: side('north', r.north) };
    if (r.devices) {
      // Many devices for one login: their values may be ${NAME} too.
      const devices = r.devices.map((d, i) => side(i, d));
      const groups: Record<string, string[]> = {};
      for (const [name, members] of Object.entries(r.groups ?? {}))
        Object.defineProperty(groups, name, {
          value: members.map((m) => String(m)),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      rec.fleet = r.groups ? { devices, groups } : { devices };
    } else if (r.groups)
      report.errors.push(
        `${file}:${r.line}:${r.col}: groups without devices (a record lists its devices, then groups of them)`,
      );
    if (!bad) records.push(rec);
  }
  return { records, errors: report.errors };
}

export async function readCredentials(file: string): Promise<Parsed> {
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
