/**
 * Certificates generated at test time with the openssl CLI (never checked in):
 * a CA, a server certificate for 127.0.0.1 and localhost, and client certificates
 * with the requested common names, all signed by the CA.
 *
 *   const pki = generateCerts({ clients: ['device-1'] });
 *   pki.server.certPath / pki.server.keyPath / pki.ca.certPath / pki.clients['device-1'].cert
 *   pki.cleanup();
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackDir, untrackDir } from './reaper.js';

export interface CertPair {
  /** PEM text. */
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export interface TestPki {
  dir: string;
  ca: CertPair;
  /** CN localhost, subjectAltName DNS:localhost, IP:127.0.0.1. */
  server: CertPair;
  /** One pair per requested client common name. */
  clients: Record<string, CertPair>;
  /** A second, unrelated CA and a client signed by it (for "unknown CA" tests). */
  rogue: { ca: CertPair; client: CertPair };
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pair(dir: string, name: string): CertPair {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

function makeCa(dir: string, name: string, cn: string): CertPair {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return pair(dir, name);
}

function makeLeaf(dir: string, name: string, cn: string, ca: string, ext: string): CertPair {
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${cn}`,
    ],
    dir,
  );
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
  return pair(dir, name);
}

const SERVER_EXT =
  'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n';
const CLIENT_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n';

export function generateCerts(opts: { clients?: string[] } = {}): TestPki {
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'mqtt-proxy-pki-')));
  try {
    const ca = makeCa(dir, 'ca', 'mqtt-dialect-proxy test CA');
    const server = makeLeaf(dir, 'server', 'localhost', 'ca', SERVER_EXT);
    const clients: Record<string, CertPair> = {};
    (opts.clients ?? []).forEach((cn, i) => {
      if (!/^[A-Za-z0-9._:@-]+$/.test(cn)) throw new Error(`unsupported client common name: ${cn}`);
      clients[cn] = makeLeaf(dir, `client-${i}`, cn, 'ca', CLIENT_EXT);
    });
    const rogueCa = makeCa(dir, 'rogue-ca', 'unrelated CA');
    const rogueClient = makeLeaf(dir, 'rogue-client', 'rogue', 'rogue-ca', CLIENT_EXT);
    return {
      dir,
      ca,
      server,
      clients,
      rogue: { ca: rogueCa, client: rogueClient },
      cleanup(): void {
        rmSync(dir, { recursive: true, force: true });
        untrackDir(dir);
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw err;
  }
}
