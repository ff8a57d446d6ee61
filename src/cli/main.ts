#!/usr/bin/env node
/**
 * mqtt-dialect-proxy [run] [--config FILE] [flags...]   run the proxy
 * mqtt-dialect-proxy check [DIR]                        validate mapping files
 * mqtt-dialect-proxy translate ...                      dry-run a translation
 * mqtt-dialect-proxy config --print ...                 print the effective configuration
 *
 * Exit codes: 0 ok, 1 check found errors, 2 invalid configuration or mapping, or a usage error.
 */
import {
  ConfigError,
  listeningBanner,
  maskUrlPassword,
  optionsHelp,
  resolveConfig,
  schemaLeaves,
} from '../config/print.js';
import { createLogger } from '../log/logger.js';
import { startProxy } from '../proxy.js';
import { MappingError } from '../routes/index.js';
import { createStore } from '../store/index.js';

const USAGE = `usage: mqtt-dialect-proxy [run] [--config FILE] [options]
       mqtt-dialect-proxy check [DIR]
       mqtt-dialect-proxy translate --south D --north D [--var K=V ...] --topic T --payload P [--json] [--downlink]
       mqtt-dialect-proxy config --print [--config FILE] [options]

Options: mqtt-dialect-proxy --help lists them; every one also has an MQTT_PROXY_* variable.
`;

/** The usage and every run option (from the schema: the image holds no README). */
const help = (): string =>
  `${USAGE}
Precedence: defaults < --config FILE (YAML or JSON) < MQTT_PROXY_* environment < flags.
Run options (--name value or --name=value), environment variable, default:
${optionsHelp()}`;

async function run(argv: string[]): Promise<number> {
  let file: string | undefined;
  const args: string[] = [];
  const known = new Set(
    schemaLeaves()
      .map((l) => l.leaf.arg)
      .filter(Boolean),
  );
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(help());
      return 0;
    }
    if (a === '--config' || a === '-c' || a.startsWith('--config=')) {
      file = a.startsWith('--config=') ? a.slice('--config='.length) : argv[++i];
      // Without a file the defaults would run silently in its place.
      if (!file || file.startsWith('--')) {
        process.stderr.write(`mqtt-dialect-proxy: --config needs a file name\n${USAGE}`);
        return 2;
      }
      continue;
    }
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : '';
    if (!name || !known.has(name)) {
      process.stderr.write(`mqtt-dialect-proxy: ${unknownArgument(a, name)}\n${USAGE}`);
      return 2;
    }
    args.push(a);
    // `--flag value` as well as `--flag=value`.
    const next = argv[i + 1];
    if (!a.includes('=') && next !== undefined && !next.startsWith('--')) {
      args.push(next);
      i++;
    }
  }
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = resolveConfig({ args, env: process.env, file });
  } catch (err) {
    process.stderr.write(`mqtt-dialect-proxy: ${(err as Error).message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
  const log = createLogger({ level: config.log.level, format: config.log.format });
  if (config.limits.maxBufferedBytes !== 1048576)
    log.warn(
      "limits.maxBufferedBytes (--max-buffered-bytes, MQTT_PROXY_MAX_BUFFERED_BYTES) is deprecated and has no effect: backpressure follows the sockets' own write buffers",
    );
  const storeLog = log.child({ part: 'store' });
  let store: ReturnType<typeof createStore>;
  try {
    store = createStore(config.store, {
      // Messages are fixed texts plus host:port and an error code: no URL password, no record.
      onError: (err) => storeLog.warn({ err: err.message }, 'credentials store unreachable; retrying'),
      onRecover: () => storeLog.info('credentials store reachable again'),
    });
  } catch (err) {
    // The schema validates the store's options; this is their last line (fixed messages).
    process.stderr.write(`mqtt-dialect-proxy: invalid configuration: ${(err as Error).message}\n`);
    return 2;
  }
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  try {
    proxy = await startProxy(config, { logger: log, store });
  } catch (err) {
    await store.close();
    if (err instanceof MappingError) {
      process.stderr.write(`mqtt-dialect-proxy: refusing to start, ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    // Errors that name their option carry their code in the message already.
    const code = e.code && !e.message.includes(e.code) ? `${e.code} ` : '';
    process.stderr.write(`mqtt-dialect-proxy: cannot start: ${code}${maskUrlPassword(e.message)}\n`);
    return 1;
  }
  if (process.stdout.isTTY) process.stdout.write(listeningBanner(config, proxy.ports));
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal (Ctrl-C twice, a supervisor's repeat): stop waiting, close now. The
        // default action would kill the process mid-drain, with no word to clients or the log.
        log.warn({ signal }, 'second signal: closing now, in-flight messages not awaited');
        void proxy.close(0);
        return;
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      proxy
        .close(config.shutdown.graceMs)
        .then(() => store.close())
        .then(
          () => resolve(0),
          (err: Error) => {
            log.error({ err: err.message }, 'error while shutting down');
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('SIGHUP: reloading mappings and credentials');
      void proxy.reload();
    });
  });
}

/**
 * What an argument that is no option is called in the error: its name only, never its value
 * (`--north-ur=mqtt://user:password@host` misspelt, or a PEM key given after a flag that does
 * not take it); a word is shown whole (a misspelt command).
 */
function unknownArgument(arg: string, name: string): string {
  if (name && /^[\w.-]{1,64}$/.test(name)) return `unknown option "--${name}"`;
  if (/^[\w.-]{1,64}$/.test(arg)) return `unknown command or option "${arg}"`;
  return 'unexpected argument (not shown: it may be a secret); options are --name or --name=value';
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'check':
      return (await import('./check.js')).main(rest);
    case 'translate':
      return (await import('./translate.js')).main(rest);
    case 'config':
      return (await import('./config.js')).main(rest);
    case 'run':
      return run(rest);
    case 'help':
      process.stdout.write(help());
      return 0;
    default:
      return run(argv);
  }
}

process.on('uncaughtException', (err) => {
  // A bug must not take every connection down silently: log it and keep serving.
  process.stderr.write(`mqtt-dialect-proxy: internal error: ${err.stack ?? err.message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`mqtt-dialect-proxy: ${err.message}\n`);
    process.exit(1);
  },
);
