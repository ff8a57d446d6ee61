/**
 * The proxy as a library: listeners + sessions + north connections + metrics server.
 * `startProxy` is what the CLI, the tests and the benchmarks call.
 */
import { resetStream } from './codec/channel.js';
import { maskUrlPassword } from './config/print.js';
import type { ProxyConfig } from './config/schema.js';
import { startError } from './config/start-error.js';
import type { RouteHandler } from './core/contract.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './embedded/broker.js';
import { type Listeners, type OnStream, startListeners, type UpgradeHook } from './listeners/listeners.js';
import { nativeWebSocketHook } from './listeners/native-ws.js';
import { type Logger, silentLogger } from './log/logger.js';
import { RepeatBudget } from './log/repeats.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { type MetricsServer, startMetricsServer } from './metrics/server.js';
import { type LoadedRoute, loadRoute } from './routes/index.js';
import type { SessionContext, SessionLike } from './session/context.js';
import { acceptGatewayRouteClient } from './session/gateway-pick.js';
import { PacketMeter } from './session/meter.js';
import { Session } from './session/session.js';
import type { CredentialStore } from './store/types.js';
import { GatewayHub } from './upstream/gateway.js';
import { type CompiledTransport, compileTransport } from './upstream/transport.js';

export interface ProxyOptions {
  logger?: Logger;
  /** Use this route instead of loading `config.mapping.route` from the mappings folder. */
  route?: RouteHandler;
  store?: CredentialStore;
  /** Extra WebSocket upgrade handler (a native WebSocket face). */
  upgradeHook?: UpgradeHook;
}

export interface ProxyHandle {
  /** Bound ports (listeners configured with port 0 get a free one). */
  readonly ports: {
    tcp?: number;
    ws?: number;
    tls?: number;
    wss?: number;
    metrics?: number;
    embedded?: number;
  };
  readonly metrics: Metrics;
  /** The north URL in use (the embedded broker's when none is configured). */
  readonly northUrl: string;
  /** Number of open south connections. */
  connectionCount(): number;
  /** Reload mappings and credentials; false (old version kept, errors logged) when invalid. */
  reload(): Promise<boolean>;
  /**
   * Stop accepting, tell clients, wait up to graceMs for in-flight QoS 1/2, close everything.
   * Called again while that wait goes on, with graceMs 0: the wait ends now (a second signal).
   */
  close(graceMs?: number): Promise<void>;
}

const SWEEP_MS = 250;

export async function startProxy(config: ProxyConfig, opts: ProxyOptions = {}): Promise<ProxyHandle> {
  const log = opts.logger ?? silentLogger;
  const metrics = createMetrics();
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    let loaded: LoadedRoute | undefined;
    if (!opts.route) {
      loaded = await loadRoute({
        dir: config.mapping.dir,
        route: config.mapping.route,
        credentials: config.mapping.credentials || undefined,
        northUrl: config.north.url || undefined,
        northTls: {
          ca: config.north.ca,
          cert: config.north.cert,
          key: config.north.key,
          servername: config.north.servername,
          rejectUnauthorized: config.north.rejectUnauthorized,
        },
        store: opts.store,
        log,
        metrics,
      });
      cleanups.push(() => loaded?.close());
    }
    let embedded: EmbeddedBroker | undefined;
    // A route with a URL of its own needs no embedded broker (and no process north URL).
    let northUrl = config.north.url || loaded?.northUrl() || '';
    if (!northUrl) {
      embedded = await startEmbeddedBroker(config.embedded.port);
      cleanups.push(() => embedded?.close());
      northUrl = embedded.url;
      log.info({ url: northUrl }, 'no north URL configured: using the embedded broker (MQTT 3.1.1 only)');
    }
    const north = config.north;
    const tlsOpts = {
      ca: north.ca,
      cert: north.cert,
      key: north.key,
      servername: north.servername,
      rejectUnauthorized: north.rejectUnauthorized,
    };
    const defaultTransport = compileTransport(northUrl, tlsOpts);
    const transports = new Map<string, CompiledTransport>();
    const transport = (url?: string): CompiledTransport => {
      if (!url) return defaultTransport;
      let t = transports.get(url);
      if (!t) {
        t = compileTransport(url, tlsOpts);
        transports.set(url, t);
      }
      return t;
    };

    const fixedRoute = opts.route;
    const sessions = new Set<SessionLike>();
    // One budget for every line repeated per connection or per device, the gateway links' too.
    const repeats = new RepeatBudget(log);
    cleanups.push(() => repeats.close());
    const gateways = new GatewayHub({
      transport,
      timeoutMs: north.connectTimeoutMs,
      maxPacketBytes: config.limits.maxPacketBytes,
      log: log.child({ part: 'gateway' }),
      repeats,
      onError: (type) => metrics.gatewayErrorsTotal.labels(type).inc(),
    });
    cleanups.push(() => gateways.close());
    const ctx: SessionContext = {
      gateways,
      route: () => fixedRoute ?? loaded!.handler,
      transport,
      limits: {
        maxPacketBytes: config.limits.maxPacketBytes,
        connectTimeoutMs: config.limits.connectTimeoutMs,
        northConnectTimeoutMs: north.connectTimeoutMs,
        gatewayInflight: config.limits.gatewayInflight,
      },
      metrics,
      meter: new PacketMeter(metrics),
      log,
      repeats,
      sessions,
    };

    const sweeper = setInterval(() => {
      const now = Date.now();
      for (const s of sessions) s.tick(now);
    }, SWEEP_MS);
    sweeper.unref();
    cleanups.push(() => clearInterval(sweeper));

    const onStream: OnStream = (stream, info) => {
      // Log lines at info and below name the peer: read its address while the socket is open.
      if (log.isLevelEnabled('info')) void info.remoteAddress;
      const gatewaySpec = ctx.route().southGateway;
      // A gateway or a device connecting directly: told apart by the CONNECT's record.
      if (gatewaySpec) acceptGatewayRouteClient(stream, info, ctx, gatewaySpec);
      else new Session(stream, info, ctx);
    };
    const upgradeHook =
      opts.upgradeHook ??
      (config.listen.nativeWs ? nativeWebSocketHook(onStream, log, config.limits.maxPacketBytes) : undefined);
    const listeners: Listeners = await startListeners(
      config.listen,
      onStream,
      upgradeHook,
      config.limits.maxPacketBytes,
    );
    let listening = true;
    cleanups.push(() => {
      listening = false;
      const closed = listeners.close();
      listeners.terminate();
      return closed;
    });

    let metricsServer: MetricsServer | undefined;
    if (config.metrics.port >= 0) {
      metricsServer = await startMetricsServer({
        host: config.metrics.host,
        port: config.metrics.port,
        registry: metrics.registry,
        readiness: () => {
          const checks = { listeners: listening, mappings: true, north: northReachable };
          return { ready: checks.listeners && checks.mappings && checks.north, checks };
        },
      }).catch((err: unknown) => {
        const { host, port } = config.metrics;
        const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        throw startError('metrics.port', `cannot listen on ${address}`, err);
      });
      cleanups.push(() => metricsServer?.close());
    }
    // North reachability for /readyz: a TCP/TLS/WS open, checked in the background.
    let northReachable = false;
    // What the log last said (undefined: nothing yet): one line per change, not per probe.
    let northLogged: boolean | undefined;
    const probe = async () => {
      // The route's own north when it names one (as its sessions use), else the process's.
      const t = transport(loaded?.northUrl());
      let failure: string | undefined;
      try {
        // A reset leaves no TIME_WAIT on the proxy's side (see PacketChannel.reset).
        resetStream(await t.open(2000));
        northReachable = true;
      } catch (err) {
        northReachable = false;
        const e = err as NodeJS.ErrnoException;
        failure = e.code ?? maskUrlPassword(e.message);
      }
      if (northReachable === (northLogged ?? true)) {
        northLogged = northReachable;
        return;
      }
      northLogged = northReachable;
      // Scheme, host and port only: the URL's user and password stay out of the log.
      const north = `${t.url.protocol}://${t.url.host}:${t.url.port}`;
      if (northReachable) log.info({ north }, 'north broker reachable again');
      else
        log.warn(
          { north, err: failure },
          'north broker unreachable: clients are refused until it answers (/readyz not ready)',
        );
    };
    void probe();
    const prober = setInterval(probe, 10000);
    prober.unref();
    cleanups.push(() => clearInterval(prober));

    log.info(
      { ports: listeners.ports, route: ctx.route().name, metrics: metricsServer?.port },
      'proxy listening',
    );
    let closing: Promise<void> | undefined;
    let cutDrain = (): void => {};
    const cut = new Promise<void>((resolve) => {
      cutDrain = resolve;
    });
    return {
      ports: { ...listeners.ports, metrics: metricsServer?.port, embedded: embedded?.port },
      metrics,
      northUrl,
      connectionCount: () => sessions.size,
      async reload() {
        if (!loaded) return true;
        // The route loader counts reloads (config_reloads_total{kind="mapping"}) and logs their
        // outcome, as it does for those its file watcher starts: nothing to add here.
        const res = await loaded.reload();
        return res.ok;
      },
      close(graceMs = config.shutdown.graceMs) {
        if (closing && graceMs === 0) cutDrain();
        if (!closing) {
          closing = (async () => {
            listening = false;
            const stopAccepting = listeners.close();
            await Promise.all([...sessions].map((s) => s.drain(graceMs, cut)));
            // What no session owns (a WebSocket upgrade or TLS handshake never finished) or a
            // session left open would keep the listeners' close waiting for the peer: end it.
            listeners.terminate();
            await stopAccepting;
            await cleanup();
          })();
        }
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
