#!/usr/bin/env python3
"""The real control plane's "cluster" egress for the tests (scripts/kube, issue 17).

kube-apiserver calls a webhook Service at its ClusterIP through this HTTP CONNECT proxy
(EgressSelectorConfiguration, proxyProtocol HTTPConnect, over a Unix socket: the TCP transport
demands client certificates, and kube-apiserver v1.36.3 dereferences a missing tlsConfig instead
of refusing it). No Pods run here: each Service given with --map NAME.NAMESPACE=127.0.0.1:PORT is
sent to that local address instead. The proxy learns ClusterIPs from the API server. Everything
else is refused.
"""
import argparse
import json
import os
import socket
import ssl
import threading
import urllib.request


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--map", action="append", default=[])
    return p.parse_args()


class Routes:
    def __init__(self, args):
        self.args = args
        self.services = {}
        for m in args.map:
            svc, addr = m.split("=", 1)
            host, port = addr.rsplit(":", 1)
            self.services[svc] = (host, int(port))
        self.by_ip = {}
        self.lock = threading.Lock()

    def refresh(self):
        ctx = ssl.create_default_context(cafile=self.args.ca)
        req = urllib.request.Request(
            self.args.server + "/api/v1/services",
            headers={"Authorization": "Bearer " + self.args.token},
        )
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            items = json.load(r).get("items", [])
        table = {}
        for s in items:
            key = s["metadata"]["name"] + "." + s["metadata"]["namespace"]
            ip = s.get("spec", {}).get("clusterIP")
            if key in self.services and ip and ip != "None":
                table[ip] = self.services[key]
        with self.lock:
            self.by_ip = table

    def resolve(self, host):
        # A Service by DNS name (name.namespace.svc) or by ClusterIP.
        parts = host.split(".")
        if len(parts) >= 3 and parts[2] == "svc":
            return self.services.get(parts[0] + "." + parts[1])
        with self.lock:
            hit = self.by_ip.get(host)
        if hit is None:
            self.refresh()
            with self.lock:
                hit = self.by_ip.get(host)
        return hit


def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(conn, routes):
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > 65536:
                return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, _ = line.split(" ", 2)
        host, port = target.rsplit(":", 1)
        dest = routes.resolve(host) if method == "CONNECT" else None
        if dest is None:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            print(f"refused {line}", flush=True)
            return
        up = socket.create_connection(dest, timeout=10)
        up.settimeout(None)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            up.sendall(rest)
        print(f"{target} -> {dest[0]}:{dest[1]}", flush=True)
        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join()
    except (OSError, ValueError) as e:
        print(f"error: {e}", flush=True)
    finally:
        conn.close()


def main():
    args = parse_args()
    routes = Routes(args)
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.listen)
    srv.listen(64)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, routes), daemon=True).start()


if __name__ == "__main__":
    main()
