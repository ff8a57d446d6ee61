/**
 * What stops the start for a file or a port an option names: the error names the option to
 * fix (`listen.tcpPort: cannot listen on 0.0.0.0:1883: already in use (EADDRINUSE)`) and keeps
 * the cause's code. It shows file paths and addresses, never a value that may be a secret
 * (an inline PEM key).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

const WHY: Record<string, string> = {
  EADDRINUSE: 'already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'not an address of this host',
  ENOENT: 'no such file',
  EISDIR: 'a folder, not a file',
  ERR_MISSING_PASSPHRASE: 'an encrypted key (a passphrase is not supported)',
};

export function startError(option: string, what: string, cause: unknown): Error {
  const c = cause as NodeJS.ErrnoException;
  const why = (c.code && WHY[c.code]) ?? c.message;
  const err = new Error(`${option}: ${what}: ${why}${c.code ? ` (${c.code})` : ''}`) as NodeJS.ErrnoException;
  if (c.code) err.code = c.code;
  return err;
}

/** PEM material given inline or as a file path; an error names the option. */
export function readPem(option: string, value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw startError(option, `cannot read ${value}`, err);
  }
}

/** The file's path for a message, or nothing for inline PEM (it may be a key). */
function source(value: string): string {
  return value.includes('-----BEGIN') ? 'the inline value' : value;
}

/**
 * Checks a certificate and its private key before any listener or connection uses them: each
 * one readable as PEM, and the key the certificate's own.
 */
export function checkCertificateKey(
  cert: { option: string; value: string; pem: string },
  key: { option: string; value: string; pem: string },
): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert.pem);
  } catch (err) {
    throw startError(cert.option, `${source(cert.value)} is not a PEM certificate`, err);
  }
  let pk: ReturnType<typeof createPrivateKey>;
  try {
    pk = createPrivateKey(key.pem);
  } catch (err) {
    throw startError(key.option, `${source(key.value)} is not a PEM private key`, err);
  }
  if (!x509.checkPrivateKey(pk)) {
    throw startError(key.option, `${source(key.value)} is not the key of ${cert.option}`, {
      message: 'the key does not match the certificate',
    });
  }
}

/** Checks CA material: at least one PEM certificate. */
export function checkCa(option: string, value: string, pem: string): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw startError(option, `${source(value)} is not a PEM certificate`, err);
  }
}
