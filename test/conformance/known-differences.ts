/**
 * Tests of mosquitto's suite whose result through the proxy differs from mosquitto alone,
 * today, each with its cause. The conformance test fails on any difference not listed here;
 * one listed that no longer differs is reported as a diagnostic (then delete its line here).
 * With MQTT_PROXY_CONFORMANCE_STRICT=1 any difference fails. Details: test/core/FINDINGS.md.
 */
export const KNOWN_DIFFERENCES: Record<string, string> = {};

/**
 * Tests left out of the comparison: they assert timing, not behaviour (the project's tests
 * assert no timings), so their result depends on the machine's load.
 */
export const EXCLUDED_TESTS: Record<string, string> = {
  '01-connect-575314.py':
    'passes when a CONNECT with 20,000 user properties is answered within 20× a plain one',
};
