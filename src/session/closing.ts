/**
 * Closing a session: the client's DISCONNECT, the shutdown drain, and the one close path every
 * close goes through (counted, logged once, MQTT 5 clients told why, both sides ended).
 */
import type { IDisconnectPacket, Packet } from 'mqtt-packet';
import { openGauge } from './session-metrics.js';
import type { SessionState } from './state.js';

/**
 * Close reasons that an MQTT 5 client is told with DISCONNECT, and their reason codes: the
 * protocol errors mosquitto reports this way too (its broker test suite runs through the
 * proxy, test/conformance). A packet the parser cannot read is closed without a word.
 */
const DISCONNECT_CODES: Record<string, number> = {
  malformed_topic: 0x81,
  empty_unsubscribe: 0x81,
  session_expiry_after_zero: 0x82,
};

/** The packet the south channel writes before it closes on a framing error, if any. */
export function lastWords(s: SessionState, reason: string): Packet | undefined {
  if (s.state === 'new' && reason === 'unsupported_protocol_version') {
    return { cmd: 'connack', returnCode: 1, sessionPresent: false };
  }
  const code = s.state === 'online' && s.version === 5 ? DISCONNECT_CODES[reason] : undefined;
  return code === undefined ? undefined : { cmd: 'disconnect', reasonCode: code };
}

export function southDisconnect(s: SessionState, p: IDisconnectPacket): void {
  // MQTT-3.14.2-2: a session that expired at once cannot be given an expiry on DISCONNECT.
  if (s.version === 5 && !s.sessionExpiry && p.properties?.sessionExpiryInterval) {
    s.close('session_expiry_after_zero');
    return;
  }
  // Forward the DISCONNECT so the broker knows it was a normal close (no will message).
  const north = s.north;
  s.north = undefined;
  north?.end(s.quirks.will === 'pass' || s.version === 5 ? p : { cmd: 'disconnect' });
  s.close('client_disconnect');
}

/**
 * Stop reading, wait for the in-flight messages (up to `graceMs`, or until `cut` resolves),
 * tell the client, close.
 */
export function drainSession(s: SessionState, graceMs: number, cut?: Promise<void>): Promise<void> {
  if (s.state === 'closed') return Promise.resolve();
  s.south.pause();
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish('shutdown_grace_expired'), graceMs);
    const finish = (reason: string) => {
      clearTimeout(timer);
      s.draining = undefined;
      if (s.state !== 'closed' && s.version === 5) {
        s.south.write({ cmd: 'disconnect', reasonCode: 0x8b });
      }
      s.close(reason);
      resolve();
    };
    s.draining = () => finish('shutdown');
    // finish() again after the close is a no-op: the state is closed, close() is idempotent.
    void cut?.then(() => finish('shutdown_grace_expired'));
    checkDrained(s);
  });
}

/** Called when a relay settles a message: a drain in progress finishes once both are empty. */
export function checkDrained(s: SessionState): void {
  if (s.draining && (s.upRelay?.size ?? 0) === 0 && (s.downRelay?.size ?? 0) === 0) s.draining();
}

/** The rest of `Session.close`, once the state is 'closed' and the queue emptied. */
export function closeSession(s: SessionState, wasOnline: boolean, reason: string, err?: Error): void {
  s.ctx.sessions.delete(s);
  const m = s.ctx.metrics;
  m.closesTotal.labels(reason).inc();
  if (wasOnline) openGauge(m, s.info.listener, s.dialect).dec();
  // MQTT 5: a server closing for the client's fault says why (DISCONNECT with a reason code).
  const code = wasOnline && s.version === 5 ? DISCONNECT_CODES[reason] : undefined;
  if (code !== undefined) s.south.write({ cmd: 'disconnect', reasonCode: code });
  if (reason === 'internal_error') {
    s.log.error({ reason, err: err?.stack }, 'connection closed by an internal error');
  } else {
    const quiet = reason === 'client_disconnect' || reason === 'peer_closed' || reason === 'shutdown';
    const level = quiet ? 'debug' : 'info';
    // The per-connection logger is made only when the line is written.
    if (
      s.ctx.log.isLevelEnabled(level) &&
      (level === 'debug' || (s.ctx.repeats?.allow(level, 'connection closed', reason) ?? true))
    )
      s.log[level](
        { reason, code: (err as { code?: string } | undefined)?.code, err: err?.message },
        'connection closed',
      );
  }
  s.upRelay?.clear();
  s.downRelay?.clear();
  s.mapper?.close();
  // No DISCONNECT north unless the client sent one: the broker then publishes the will.
  s.north?.destroy();
  s.south.end();
  // A shutdown drain waiting on this session is over: nothing is in flight any more.
  s.draining?.();
}
