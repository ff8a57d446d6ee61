
# ---- Appended by mqtt-dialect-proxy's conformance runner (test/conformance/suite.ts). ----
# Packets are read whole (fixed header + remaining length) instead of by the expected byte
# count, and compared after folding the encodings MQTT 5 declares equivalent: an acknowledgement
# (PUBACK, PUBREC, PUBREL, PUBCOMP) or DISCONNECT/AUTH may omit a zero Property Length
# (MQTT 5.0 sections 3.4.2.1, 3.14.2.2, 3.15.2.2), and then a Success (0x00) Reason Code.
# Both the direct and the proxied runs use this same comparison.

def _mqttproxy_split(data):
    out = []
    i = 0
    while i < len(data):
        start = i
        i += 1
        mult = 1
        rl = 0
        for _ in range(4):
            if i >= len(data):
                return out + [data[start:]]
            b = data[i]
            i += 1
            rl += (b & 0x7F) * mult
            mult *= 128
            if b & 0x80 == 0:
                break
        out.append(data[start:i + rl])
        i += rl
    return out


def _mqttproxy_read_one(sock):
    first = sock.recv(1)
    if len(first) == 0:
        return b""
    data = first
    mult = 1
    rl = 0
    for _ in range(4):
        b = sock.recv(1)
        if len(b) == 0:
            return data
        data += b
        rl += (b[0] & 0x7F) * mult
        mult *= 128
        if b[0] & 0x80 == 0:
            break
    body = b""
    while len(body) < rl:
        chunk = sock.recv(rl - len(body))
        if len(chunk) == 0:
            break
        body += chunk
    return data + body


def _mqttproxy_encode_rl(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        if n > 0:
            b |= 0x80
        out += bytes([b])
        if n == 0:
            return out


def _mqttproxy_norm(pkt):
    parts = _mqttproxy_split(pkt)
    if len(parts) != 1 or len(pkt) < 2:
        return pkt
    kind = pkt[0] >> 4
    hdr_len = 1
    while hdr_len < len(pkt) and pkt[hdr_len] & 0x80:
        hdr_len += 1
    hdr_len += 1
    body = pkt[hdr_len:]
    if kind in (4, 5, 6, 7):
        fixed, rest = body[:2], body[2:]
    elif kind in (14, 15):
        fixed, rest = b"", body
    else:
        return pkt
    if len(rest) == 2 and rest[1] == 0:
        rest = rest[:1]
    if len(rest) == 1 and rest[0] == 0:
        rest = b""
    body = fixed + rest
    return bytes([pkt[0]]) + _mqttproxy_encode_rl(len(body)) + body


def expect_packet(sock, name, expected):
    if len(expected) == 0:
        packet_recvd = sock.recv(1)
        if packet_matches(name, packet_recvd, expected):
            return True
        raise TestError
    wanted = _mqttproxy_split(expected)
    got = []
    for _ in wanted:
        p = _mqttproxy_read_one(sock)
        got.append(p)
        if len(p) == 0:
            break
    if [_mqttproxy_norm(p) for p in got] == [_mqttproxy_norm(p) for p in wanted]:
        return True
    packet_matches(name, b"".join(got), expected)
    raise TestError


def receive_unordered(sock, recv1_packet, recv2_packet, error_string):
    a = _mqttproxy_read_one(sock)
    b = _mqttproxy_read_one(sock) if len(a) else b""
    if len(a) == 0 or len(b) == 0:
        raise ValueError(error_string)
    got = sorted([_mqttproxy_norm(a), _mqttproxy_norm(b)])
    if got == sorted([_mqttproxy_norm(recv1_packet), _mqttproxy_norm(recv2_packet)]):
        return
    packet_matches(error_string, a + b, recv2_packet + recv1_packet)
    raise ValueError(error_string)
