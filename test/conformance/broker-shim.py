#!/usr/bin/env python3
# Stands in for /usr/sbin/mosquitto when the mosquitto broker test suite runs under
# test/conformance: it asks the controller (the node test process, over a unix socket) to
# start a broker for the same command line, either mosquitto itself or the proxy in front of
# mosquitto, and stops it when it gets SIGTERM/SIGINT, as the suite does to a broker.
import json
import os
import signal
import socket
import sys
import time


def main():
    parent = os.getppid()
    # The suite's test may exit without stopping its broker: never hold its stdout open.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    ctl = os.environ.get("MQTT_PROXY_CONFORMANCE_CTL")
    if not ctl:
        print("broker-shim: MQTT_PROXY_CONFORMANCE_CTL is not set", file=sys.stderr)
        return 1
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(ctl)
    f = s.makefile("rwb")

    def call(msg):
        f.write((json.dumps(msg) + "\n").encode())
        f.flush()
        line = f.readline()
        if not line:
            return {"ok": False, "error": "controller closed the connection"}
        return json.loads(line)

    stopping = {"now": False}

    def on_signal(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    r = call({"op": "start", "argv": sys.argv[1:]})
    if not r.get("ok"):
        print("broker-shim: start failed: %s" % r.get("error"), file=sys.stderr)
        return 1
    s.settimeout(None)
    # Wait for the signal or the test's exit (bounded: 10 minutes at most).
    for _ in range(6000):
        if stopping["now"] or os.getppid() != parent:
            break
        time.sleep(0.1)
    s.settimeout(30)
    r = call({"op": "stop"})
    sys.stderr.write(r.get("log", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
