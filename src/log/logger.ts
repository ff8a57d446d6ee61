/**
 * One logger for the process (pino). JSON by default, human-readable on a terminal.
 * Every field that can carry a secret is redacted by path; code never interpolates
 * credentials or topics that may hold secrets into messages.
 */
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

const SECRET_FIELDS = ['password', 'secret', 'token', 'apiKey', 'jwt', 'authorization', 'key', 'privateKey'];

/** Field paths censored in every log line: each secret field at the top and two levels down. */
export const REDACT_PATHS = [
  ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]),
  'headers.authorization',
  'req.headers.authorization',
];

export interface LogOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  /** Destination stream (tests); defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const pretty =
    opts.format === 'pretty' || (opts.format !== 'json' && !opts.destination && process.stdout.isTTY);
  const base = {
    level,
    base: { service: 'mqtt-dialect-proxy' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return opts.destination ? pino(base, opts.destination) : pino(base);
}

/** A logger that writes nothing: tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
