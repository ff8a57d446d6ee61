/**
 * The README's configuration table, generated from the schema: option, flag, environment
 * variable, default, description. Run as a script:
 *   node --import tsx src/config/table.ts           print the table
 *   node --import tsx src/config/table.ts --write   regenerate the README block
 *   node --import tsx src/config/table.ts --check   exit 1 when the README block is stale
 * The block sits between the two markers below, at the end of README.md if absent.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schemaLeaves } from './print.js';
import { schema } from './schema.js';

export const START = '<!-- config-table:start -->';
export const END = '<!-- config-table:end -->';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function formatDefault(v: unknown): string {
  if (v === '') return '(empty)';
  return `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
}

/** The markdown table for the schema, one row per option, in schema order. */
export function configTable(node: object = schema): string {
  const rows = ['| Option | Flag | Environment variable | Default | Description |', '|---|---|---|---|---|'];
  for (const { path, leaf } of schemaLeaves(node)) {
    const flag = leaf.arg ? `\`--${leaf.arg}\`` : '';
    const env = leaf.env ? `\`${leaf.env}\`` : '';
    const choices = Array.isArray(leaf.format)
      ? ` One of: ${leaf.format.map((f) => `\`${f}\``).join(', ')}.`
      : '';
    const secret = leaf.sensitive ? ' **Secret**: masked by `config --print`.' : '';
    rows.push(
      `| \`${path}\` | ${flag} | ${env} | ${cell(formatDefault(leaf.default))} | ${cell(leaf.doc + choices + secret)} |`,
    );
  }
  return rows.join('\n');
}

/** The full marked block as it must appear in the README. */
export function configBlock(node: object = schema): string {
  return [
    START,
    '<!-- generated from src/config/schema.ts by `node --import tsx src/config/table.ts --write`; do not edit -->',
    '',
    'Precedence: defaults < `--config FILE` (YAML or JSON) < environment < flags.',
    '',
    configTable(node),
    END,
  ].join('\n');
}

/** The block currently in a README text, or undefined when the markers are missing. */
export function extractBlock(readme: string): string | undefined {
  const s = readme.indexOf(START);
  const e = readme.indexOf(END);
  if (s < 0 || e < s) return undefined;
  return readme.slice(s, e + END.length);
}

/** The README text with the block replaced, or appended at the end when absent. */
export function withBlock(readme: string, block: string = configBlock()): string {
  const current = extractBlock(readme);
  if (current !== undefined) return readme.replace(current, () => block);
  const sep = readme === '' ? '' : readme.endsWith('\n\n') ? '' : readme.endsWith('\n') ? '\n' : '\n\n';
  return `${readme}${sep}## Configuration\n\n${block}\n`;
}

function cli(argv: string[]): number {
  const readmePath = fileURLToPath(new URL('../../README.md', import.meta.url));
  const read = (): string => {
    try {
      return readFileSync(readmePath, 'utf8');
    } catch {
      return '';
    }
  };
  if (argv.includes('--write')) {
    const before = read();
    const after = withBlock(before);
    if (after !== before) writeFileSync(readmePath, after);
    process.stdout.write(
      after === before ? 'README.md is up to date\n' : 'README.md configuration table written\n',
    );
    return 0;
  }
  if (argv.includes('--check')) {
    if (extractBlock(read()) === configBlock()) return 0;
    process.stderr.write(
      'README.md configuration table is stale: run node --import tsx src/config/table.ts --write\n',
    );
    return 1;
  }
  process.stdout.write(`${configTable()}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = cli(process.argv.slice(2));
}
