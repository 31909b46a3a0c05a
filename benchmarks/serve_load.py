"""Load test of ``openfer serve`` on loopback: many concurrent clients uploading real faces.

For each workload it starts a fresh server process twice, with micro-batching (``--max-batch
64``) and one request at a time (``--max-batch 1``), sends ``--requests`` uploads from
``--clients`` concurrent clients, and reports requests/s, faces/s, p50/p95/p99 latency, errors
and the server's peak RSS, then the speed-up of batching over one-at-a-time in the same run.

Workloads (real data from ../shared):
  faces   FER2013 PublicTest faces as 48x48 PNGs, ``?detect=false`` (one face per request:
          where batching matters)
  photos  ../shared/data/photos/group6.jpg (1280x886, six faces, YuNet detection per request)

    python benchmarks/serve_load.py --clients 200 --requests 1000 --out results.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from openfer.cli import PRECISION_CHOICES

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _faces(count: int) -> list[bytes]:
    from PIL import Image

    from openfer.data.fer2013 import read_csv

    images, _, _ = read_csv(SHARED / "data" / "fer2013" / "fer2013.csv.gz", "PublicTest")
    out = []
    for image in images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _request(host: str, path: str, name: str, payload: bytes) -> bytes:
    """A complete multipart POST, built once: the load generator must cost far less CPU than
    the server it measures (an httpx client on this 2-core machine was the bottleneck)."""
    boundary = b"openferloadtest0123456789"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="'
            + name.encode() + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + payload
            + b"\r\n--" + boundary + b"--\r\n")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary.decode()}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _load(url: str, payloads: list[bytes], clients: int, requests: int, query: str,
                limit_s: float) -> dict:
    """``clients`` keep-alive connections sending ``requests`` uploads in all."""
    host, port = url.split("//")[1].split(":")
    prepared = [_request(host, f"/v1/predict{query}", f"{i}.img", p)
                for i, p in enumerate(payloads)]
    latencies, errors, faces = [], [], 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + limit_s

    async def worker():
        nonlocal faces
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                writer.write(prepared[i % len(prepared)])
                try:
                    status_line = await reader.readline()
                    headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    errors.append(type(exc).__name__)
                    return
                length = next(int(line.split(":")[1]) for line in headers.split("\r\n")
                              if line.lower().startswith("content-length"))
                body = await reader.readexactly(length)
                status = int(status_line.split()[1])
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                    faces += sum(x["faces"] for x in json.loads(body)["images"])
                else:
                    errors.append(status)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - start
    stats = await _get_json(host, int(port), "/v1/stats")
    ms = np.array(latencies) * 1000
    return {"requests_ok": len(latencies), "errors": len(errors),
            "error_kinds": sorted({str(e) for e in errors}), "wall_s": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1),
            "faces_per_s": round(faces / wall, 1),
            "latency_ms": {p: round(float(np.percentile(ms, q)), 1) if len(ms) else None
                           for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
            "mean_batch": stats["batching"]["mean_batch"]}


async def _get_json(host: str, port: int, path: str) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def run(workload: str, payloads: list[bytes], max_batch: int, args) -> dict:
    port = _free_port()
    command = [sys.executable, "-m", "openfer", "serve", "--port", str(port), "--max-batch",
               str(max_batch), "--max-queue", str(args.clients * 2), "--detect-threads",
               str(args.detect_threads), "--model", args.model, "--device", "cpu",
               "--backend", args.backend, "--precision", args.precision]
    if (SHARED / "weights" / "yunet.onnx").is_file():
        command += ["--detector", "yunet", "--yunet", str(SHARED / "weights" / "yunet.onnx")]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if asyncio.run(_get_json("127.0.0.1", port, "/readyz")).get("ready"):
                    break
            except (OSError, ValueError):
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        query = "?detect=false" if workload == "faces" else ""
        asyncio.run(_load(url, payloads[:8], 8, 16, query, 60))            # warm-up
        result = asyncio.run(_load(url, payloads, args.clients, args.requests, query,
                                   args.limit_s))
        result["peak_rss_mb"] = round(_peak_rss_mb(server.pid), 1)
        result["max_batch"] = max_batch
        return result
    finally:
        server.terminate()
        server.wait(30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--limit-s", type=float, default=120.0,
                        help="stop sending after this many seconds per run")
    parser.add_argument("--workloads", default="faces,photos")
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="the torch backend's arithmetic (openfer serve --precision)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--detect-threads", type=int, default=2)
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args(argv)

    from openfer.bench import machine

    report = {"machine": machine(), "clients": args.clients, "requests": args.requests,
              "model": args.model, "backend": args.backend, "precision": args.precision,
              "workloads": {}}
    for workload in args.workloads.split(","):
        payloads = _faces(args.requests) if workload == "faces" else \
            [(SHARED / "data" / "photos" / "group6.jpg").read_bytes()]
        batched = run(workload, payloads, 64, args)
        single = run(workload, payloads, 1, args)
        report["workloads"][workload] = {
            "micro_batching": batched, "one_at_a_time": single,
            "speedup_requests_per_s": round(batched["requests_per_s"]
                                            / max(single["requests_per_s"], 1e-9), 2)}
        print(json.dumps({workload: report["workloads"][workload]}, indent=2), flush=True)
    if args.out:
        from openfer.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
