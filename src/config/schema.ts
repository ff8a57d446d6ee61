/**
 * The configuration schema: every option has a doc string, a default, an environment
 * variable and a command-line flag. Secrets are marked `sensitive` so `config --print`
 * masks them. The README's configuration table is generated from this schema.
 */
import convict from 'convict';

const isPort = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;
const port = (v: unknown): void => {
  if (!isPort(v)) throw new Error('must be a port number from 0 to 65535 (0 picks a free port)');
};
const optionalPort = (v: unknown): void => {
  if (v !== -1 && !isPort(v)) {
    throw new Error('must be a port number from 0 to 65535 (0 picks a free port), or -1 to disable it');
  }
};
const positiveInt = (v: unknown): void => {
  if (!Number.isInteger(v) || (v as number) <= 0) throw new Error('must be a positive whole number');
};
const packetIdCount = (v: unknown): void => {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535)
    throw new Error('must be a whole number from 1 to 65535 (MQTT packet identifiers)');
};
/**
 * Whole numbers. convict reads a string for a number with parseFloat, so
 * MQTT_PROXY_SHUTDOWN_GRACE_MS=10s meant 10 ms and MQTT_PROXY_MAX_PACKET_BYTES=1MB one byte:
 * here only digits (after an optional minus) become a number, and anything else stays a
 * string that the check refuses, naming the option.
 */
const wholeNumber = (v: string): unknown => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v);
for (const [name, validate] of [
  ['port-number', port],
  ['optional-port', optionalPort],
  ['positive-int', positiveInt],
  ['packet-id-count', packetIdCount],
] as const) {
  convict.addFormat({ name, validate, coerce: wholeNumber });
}
const northUrl = (v: unknown): void => {
  if (v === '') return;
  if (typeof v !== 'string' || !/^(mqtt|mqtts|ws|wss|tcp|ssl):\/\/[^\s]+$/.test(v)) {
    throw new Error('must be empty (embedded broker) or a URL mqtt://, mqtts://, ws:// or wss://');
  }
  // The scheme alone is not enough: the proxy opens it with the WHATWG URL parser at start.
  if (!parsesAsUrl(v)) throw new Error('is not a valid URL (e.g. mqtts://broker.example:8883)');
};
const redisUrl = (v: unknown): void => {
  if (typeof v !== 'string' || !/^rediss?:\/\//.test(v) || !parsesAsUrl(v)) {
    throw new Error('must be a redis:// or rediss:// URL (e.g. redis://redis.example:6379/0)');
  }
};
/**
 * On/off options. convict's Boolean reads every string but "false" as true, so
 * MQTT_PROXY_NATIVE_WS=0 turned native WebSocket clients on: this format takes true/false,
 * 1/0, yes/no and on/off (any case) and refuses anything else.
 */
const SWITCH_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  on: true,
  false: false,
  '0': false,
  no: false,
  off: false,
};
convict.addFormat({
  name: 'switch',
  validate: (v: unknown) => {
    if (typeof v !== 'boolean')
      throw new Error('must be true or false (as a flag or environment value also 1/0, yes/no, on/off)');
  },
  coerce: (v: string) => SWITCH_WORDS[v.trim().toLowerCase()] ?? v,
});

/** A URL the WHATWG parser accepts, with a host. The messages above never quote the value. */
function parsesAsUrl(v: string): boolean {
  try {
    return new URL(v).hostname !== '';
  } catch {
    return false;
  }
}

export const schema = {
  north: {
    url: {
      doc: 'North broker URL (mqtt://, mqtts://, ws://, wss://). Empty: an embedded broker on loopback.',
      format: northUrl,
      default: '',
      env: 'MQTT_PROXY_NORTH_URL',
      arg: 'north-url',
    },
    ca: {
      doc: 'PEM file of the CA that signs the north broker certificate (mqtts/wss).',
      format: String,
      default: '',
      env: 'MQTT_PROXY_NORTH_CA',
      arg: 'north-ca',
    },
    cert: {
      doc: 'PEM client certificate presented to the north broker.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_NORTH_CERT',
      arg: 'north-cert',
    },
    key: {
      doc: 'PEM private key of the north client certificate.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_NORTH_KEY',
      arg: 'north-key',
      sensitive: true,
    },
    servername: {
      doc: 'TLS server name (SNI) sent to the north broker; defaults to the URL host.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_NORTH_SERVERNAME',
      arg: 'north-servername',
    },
    rejectUnauthorized: {
      doc: 'Verify the north broker certificate.',
      format: 'switch',
      default: true,
      env: 'MQTT_PROXY_NORTH_REJECT_UNAUTHORIZED',
      arg: 'north-reject-unauthorized',
    },
    connectTimeoutMs: {
      doc: 'How long to wait for the north broker to answer CONNECT before refusing the client.',
      format: 'positive-int',
      default: 10000,
      env: 'MQTT_PROXY_NORTH_CONNECT_TIMEOUT_MS',
      arg: 'north-connect-timeout-ms',
    },
  },
  listen: {
    host: {
      doc: 'Address the south listeners bind to.',
      format: String,
      default: '0.0.0.0',
      env: 'MQTT_PROXY_HOST',
      arg: 'host',
    },
    tcpPort: {
      doc: 'Plain MQTT (TCP) port; -1 disables it.',
      format: 'optional-port',
      default: 1883,
      env: 'MQTT_PROXY_TCP_PORT',
      arg: 'tcp-port',
    },
    wsPort: {
      doc: 'MQTT over WebSocket port (path wsPath); -1 disables it.',
      format: 'optional-port',
      default: 8080,
      env: 'MQTT_PROXY_WS_PORT',
      arg: 'ws-port',
    },
    wsPath: {
      doc: 'HTTP path of the MQTT over WebSocket endpoint.',
      format: String,
      default: '/mqtt',
      env: 'MQTT_PROXY_WS_PATH',
      arg: 'ws-path',
    },
    tlsPort: {
      doc: 'MQTT over TLS port, opened when tlsCert and tlsKey are set; -1 disables it.',
      format: 'optional-port',
      default: 8883,
      env: 'MQTT_PROXY_TLS_PORT',
      arg: 'tls-port',
    },
    wssPort: {
      doc: 'MQTT over secure WebSocket port, opened when tlsCert and tlsKey are set; -1 disables it.',
      format: 'optional-port',
      default: 8443,
      env: 'MQTT_PROXY_WSS_PORT',
      arg: 'wss-port',
    },
    nativeWs: {
      doc: 'Serve native WebSocket clients (one socket per topic URL, ?access_token=KEY or an Authorization header) on the WS/WSS ports, on every path but wsPath.',
      format: 'switch',
      default: false,
      env: 'MQTT_PROXY_NATIVE_WS',
      arg: 'native-ws',
    },
    tlsCert: {
      doc: 'PEM server certificate for the TLS and WSS listeners.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_TLS_CERT',
      arg: 'tls-cert',
    },
    tlsKey: {
      doc: 'PEM private key for the TLS and WSS listeners.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_TLS_KEY',
      arg: 'tls-key',
      sensitive: true,
    },
    tlsCa: {
      doc: 'PEM CA used to verify client certificates; when set, clients may authenticate by certificate.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_TLS_CA',
      arg: 'tls-ca',
    },
  },
  limits: {
    maxPacketBytes: {
      doc: 'Largest MQTT packet accepted from either side (remaining length), in bytes.',
      format: 'positive-int',
      default: 1048576 + 65536,
      env: 'MQTT_PROXY_MAX_PACKET_BYTES',
      arg: 'max-packet-bytes',
    },
    connectTimeoutMs: {
      doc: 'A connection that sends no CONNECT within this time is closed.',
      format: 'positive-int',
      default: 10000,
      env: 'MQTT_PROXY_CONNECT_TIMEOUT_MS',
      arg: 'connect-timeout-ms',
    },
    maxBufferedBytes: {
      doc: "Deprecated: has no effect (backpressure follows the sockets' own write buffers); still accepted so that configurations setting it start, with a warning.",
      format: 'positive-int',
      default: 1048576,
      env: 'MQTT_PROXY_MAX_BUFFERED_BYTES',
      arg: 'max-buffered-bytes',
    },
    gatewayInflight: {
      doc: 'QoS 1 downlinks a south gateway may leave unacknowledged, all its devices together (1 to 65535); later ones wait for its PUBACKs.',
      format: 'packet-id-count',
      default: 1000,
      env: 'MQTT_PROXY_GATEWAY_INFLIGHT',
      arg: 'gateway-inflight',
    },
  },
  mapping: {
    dir: {
      doc: 'Folder holding dialects/ and routes/ mapping files.',
      format: String,
      default: 'mappings',
      env: 'MQTT_PROXY_MAPPINGS_DIR',
      arg: 'mappings',
    },
    route: {
      doc: 'Route to run (a file name in mappings/routes without .yaml); "passthrough" translates nothing.',
      format: String,
      default: 'passthrough',
      env: 'MQTT_PROXY_ROUTE',
      arg: 'route',
    },
    credentials: {
      doc: 'Credentials file (YAML, JSON or CSV; JSON or CSV for large fleets) mapping south identities to north identities; overrides the route.',
      format: String,
      default: '',
      env: 'MQTT_PROXY_CREDENTIALS',
      arg: 'credentials',
    },
  },
  store: {
    kind: {
      doc: 'Provisioning and credentials store: "file" or "redis".',
      format: ['file', 'redis'],
      default: 'file',
      env: 'MQTT_PROXY_STORE',
      arg: 'store',
    },
    file: {
      doc: 'File of the file store.',
      format: String,
      default: 'data/store.json',
      env: 'MQTT_PROXY_STORE_FILE',
      arg: 'store-file',
    },
    redisUrl: {
      doc: 'Redis URL of the redis store (redis://host:port/db).',
      format: redisUrl,
      default: 'redis://127.0.0.1:6379/0',
      env: 'MQTT_PROXY_REDIS_URL',
      arg: 'redis-url',
      sensitive: true,
    },
  },
  metrics: {
    port: {
      doc: 'Port of the HTTP server for /metrics, /healthz and /readyz; -1 disables it.',
      format: 'optional-port',
      default: 9464,
      env: 'MQTT_PROXY_METRICS_PORT',
      arg: 'metrics-port',
    },
    host: {
      doc: 'Address the metrics server binds to.',
      format: String,
      default: '0.0.0.0',
      env: 'MQTT_PROXY_METRICS_HOST',
      arg: 'metrics-host',
    },
  },
  log: {
    level: {
      doc: 'Log level.',
      format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      env: 'MQTT_PROXY_LOG_LEVEL',
      arg: 'log-level',
    },
    format: {
      doc: 'Log format: "json", "pretty", or "auto" (pretty on a terminal).',
      format: ['auto', 'json', 'pretty'],
      default: 'auto',
      env: 'MQTT_PROXY_LOG_FORMAT',
      arg: 'log-format',
    },
  },
  shutdown: {
    graceMs: {
      doc: 'On SIGTERM, how long in-flight QoS 1/2 messages may take to finish before the process exits.',
      format: 'positive-int',
      default: 10000,
      env: 'MQTT_PROXY_SHUTDOWN_GRACE_MS',
      arg: 'shutdown-grace-ms',
    },
  },
  embedded: {
    port: {
      doc: 'Loopback port of the embedded broker used when north.url is empty (0: a free port).',
      format: 'port-number',
      default: 0,
      env: 'MQTT_PROXY_EMBEDDED_PORT',
      arg: 'embedded-port',
    },
  },
};

export type ConfigSchema = typeof schema;

export interface ProxyConfig {
  north: {
    url: string;
    ca: string;
    cert: string;
    key: string;
    servername: string;
    rejectUnauthorized: boolean;
    connectTimeoutMs: number;
  };
  listen: {
    host: string;
    tcpPort: number;
    wsPort: number;
    wsPath: string;
    nativeWs: boolean;
    tlsPort: number;
    wssPort: number;
    tlsCert: string;
    tlsKey: string;
    tlsCa: string;
  };
  limits: {
    maxPacketBytes: number;
    connectTimeoutMs: number;
    /** Deprecated, no effect (see the schema). */
    maxBufferedBytes: number;
    gatewayInflight: number;
  };
  mapping: { dir: string; route: string; credentials: string };
  store: { kind: 'file' | 'redis'; file: string; redisUrl: string };
  metrics: { port: number; host: string };
  log: { level: string; format: 'auto' | 'json' | 'pretty' };
  shutdown: { graceMs: number };
  embedded: { port: number };
}

export function createConfig(): convict.Config<ProxyConfig> {
  // biome-ignore lint/suspicious/noExplicitAny: convict's schema typing cannot express custom format functions
  return convict<ProxyConfig>(schema as any);
}

/** Defaults merged with overrides: for tests and embedding. */
export function configWith(overrides: DeepPartial<ProxyConfig> = {}): ProxyConfig {
  const c = createConfig();
  // biome-ignore lint/suspicious/noExplicitAny: convict.load takes a partial tree
  c.load(overrides as any);
  c.validate({ allowed: 'strict' });
  return c.getProperties();
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };
