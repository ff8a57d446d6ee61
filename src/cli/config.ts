/**
 * `mqtt-dialect-proxy config --print [--format yaml|json] [--config FILE] [flags...]`:
 * prints the effective configuration (defaults < file < environment < flags) with every
 * secret masked, or explains what is wrong with it. Exit codes: 0 printed, 2 usage or
 * invalid configuration.
 */
import { ConfigError, formatConfig, resolveConfig } from '../config/print.js';

const USAGE = `usage: mqtt-dialect-proxy config --print [--format yaml|json] [--config FILE] [option flags...]

Prints the effective configuration (defaults < --config FILE < MQTT_PROXY_* environment
< flags) with secrets masked. Option flags are the same as for running the proxy,
e.g. --tcp-port 1884 --north-url mqtts://broker.example:8883.
`;

export interface ConfigCliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

const processIo: ConfigCliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
};

export async function main(argv: string[], io: ConfigCliIo = processIo): Promise<number> {
  const args = argv[0] === 'config' ? argv.slice(1) : [...argv];
  let print = false;
  let help = false;
  let format: 'yaml' | 'json' = 'yaml';
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const [name, inline] =
      a.startsWith('--') && a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
    const value = (): string | undefined => (inline !== undefined ? inline : args[++i]);
    if (name === '--print') print = true;
    else if (name === '--help' || name === '-h') help = true;
    else if (name === '--config' || name === '-c') {
      file = value();
      if (!file) return usage(io, '--config needs a file name');
    } else if (name === '--format') {
      const f = value();
      if (f !== 'yaml' && f !== 'json') return usage(io, '--format must be yaml or json');
      format = f;
    } else rest.push(a);
  }
  if (help) {
    io.stdout(USAGE);
    return 0;
  }
  if (!print) return usage(io, 'nothing to do: pass --print');
  try {
    const config = resolveConfig({ args: rest, env: io.env, file });
    io.stdout(formatConfig(config, format));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`mqtt-dialect-proxy config: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

function usage(io: ConfigCliIo, problem: string): number {
  io.stderr(`mqtt-dialect-proxy config: ${problem}\n${USAGE}`);
  return 2;
}
