/**
 * How a log line names a connection's peer.
 */
/** The peer as `ip:port` (`[ipv6]:port`) for log lines; the address alone when no port is known. */
export function peerName(info: { remoteAddress?: string; remotePort?: number }): string | undefined {
  const address = info.remoteAddress;
  if (!address) return undefined;
  const port = info.remotePort;
  if (port === undefined) return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
