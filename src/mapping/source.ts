/**
 * Parsed mapping sources with positions: every error found in a file is reported as
 * "file:line:col: message (hint)". Pure: takes text, never reads files.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';

export type Path = ReadonlyArray<string | number>;

export interface Source {
  readonly file: string;
  /** The plain JS value of the document (undefined when it did not parse). */
  readonly value: unknown;
  /** Line and column (1-based) of the node at `path`, or of its closest existing parent. */
  pos(path: Path, key?: boolean): { line: number; col: number };
}

/** Collects every error of one load; each formatted line is what `check` prints. */
export class Reporter {
  readonly errors: string[] = [];
  error(src: Source | string, path: Path, message: string, hint?: string, key = false): void {
    if (typeof src === 'string') {
      this.errors.push(`${src}:1:1: ${message}${hint ? ` (${hint})` : ''}`);
      return;
    }
    const p = src.pos(path, key);
    this.errors.push(`${src.file}:${p.line}:${p.col}: ${message}${hint ? ` (${hint})` : ''}`);
  }
  get ok(): boolean {
    return this.errors.length === 0;
  }
}

/** Parses YAML text; syntax errors are reported and yield a source whose value is undefined. */
export function parseSource(file: string, text: string, report: Reporter): Source {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  let value: unknown;
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const lp = lc.linePos(e.pos[0]);
      const msg = e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'syntax error';
      report.errors.push(`${file}:${lp.line}:${lp.col}: YAML syntax error: ${msg} (fix the YAML syntax)`);
    }
  } else {
    try {
      // Aliases (*name) are fine, a few thousand of them (records sharing one block); the
      // bound stops the exponential expansion of nested aliases ("billion laughs").
      value = doc.toJS({ maxAliasCount: 10_000 });
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0] ?? 'cannot be read';
      report.errors.push(`${file}:1:1: YAML: ${msg} (fewer or flatter aliases)`);
    }
  }
  const pos = (path: Path, key = false): { line: number; col: number } => {
    let node: unknown = doc.contents;
    let found = node;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
        if (!pair) break;
        found = key && seg === path[path.length - 1] ? pair.key : pair.value;
        node = pair.value;
        if (found === pair.value && !found) found = pair.key;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) break;
        found = item;
        node = item;
      } else break;
    }
    const range = (found as { range?: [number, number, number] } | null)?.range;
    return range ? lc.linePos(range[0]) : { line: 1, col: 1 };
  };
  return { file, value, pos };
}

/** A source built from a plain value (no positions): used by `translate --var` and tests. */
export function plainSource(file: string, value: unknown): Source {
  return { file, value, pos: () => ({ line: 1, col: 1 }) };
}
