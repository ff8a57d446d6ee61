/**
 * Regenerates configmap-mappings.yaml from the repository's mappings/ (the keys it holds;
 * the Deployments project those keys as files): `node --import tsx deploy/kubernetes/config/sync-mappings.ts`.
 * test/ops/kubernetes.test.ts fails when the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const target = join(here, 'configmap-mappings.yaml');
const current = readFileSync(target, 'utf8');
const header = current.slice(0, current.indexOf('apiVersion:'));
const keys = new Set(Object.keys((parse(current) as { data?: Record<string, string> }).data ?? {}));
const body = [...keys]
  .sort()
  .map((key) => {
    const [folder, ...rest] = key.split('.');
    const text = readFileSync(join(root, 'mappings', folder ?? '', rest.join('.')), 'utf8');
    const indented = text
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l ? `    ${l}` : ''))
      .join('\n');
    return `  ${key}: |\n${indented}\n`;
  })
  .join('');
const out = `${header}apiVersion: v1
kind: ConfigMap
metadata:
  name: mqtt-dialect-proxy-mappings
  labels:
    app.kubernetes.io/name: mqtt-dialect-proxy
data:
${body}`;
writeFileSync(target, out);
process.stdout.write(`${target}: ${keys.size} files\n`);
