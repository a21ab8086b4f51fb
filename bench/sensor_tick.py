"""Landing-sensor tick time with 10k files: listing the landing zone and planning runs, on local disk and
on S3 (moto's server on loopback, the same S3LandingZone code the sensor uses with dagster-aws).

    python -m bench.sensor_tick --files 10000 --backend local s3
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from bench.common import machine, report, today


def _tick(scan, now):
    """The tick that requests every file (its second observation), then a quiet tick over the same files."""
    from ft_sensors.landing import plan_landing_tick

    _, _, seen = plan_landing_tick(scan(), None, set(), now, 5)
    started = time.perf_counter()
    found = scan()
    _, runs, cursor = plan_landing_tick(found, seen, set(), now, 5)
    first = time.perf_counter() - started
    started = time.perf_counter()
    _, again, _ = plan_landing_tick(scan(), cursor, found.products, now, 5)
    return first, time.perf_counter() - started, len(runs), len(again)


def local_tick(files: int, products: int):
    from ft_resources.landing import scan_landing

    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        for i in range(files):
            folder = landing / f"product{i % products}"
            folder.mkdir(exist_ok=True)
            (folder / f"tickets-{i:05d}.jsonl").write_text("{}\n")
        return _tick(lambda: scan_landing(landing), time.time() + 60)


def s3_tick(files: int, products: int):
    import boto3
    from dagster_aws.s3 import S3Resource
    from moto.server import ThreadedMotoServer

    from ft_resources.landing import S3LandingZone

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="landing")
        for i in range(files):
            client.put_object(Bucket="landing", Key=f"drop/product{i % products}/tickets-{i:05d}.jsonl", Body=b"{}\n")
        zone = S3LandingZone(bucket="landing", prefix="drop", min_age_seconds=5,
                             s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1"))
        return _tick(zone.scan, time.time() + 60)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--backend", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--json")
    ns = parser.parse_args()
    lines = []
    for backend in ns.backend:
        first, steady, runs, again = (local_tick if backend == "local" else s3_tick)(ns.files, ns.products)
        result = {"benchmark": "sensor_tick", "backend": backend, "date": today(), "machine": machine(),
                  "files": ns.files, "first_tick_seconds": round(first, 3), "steady_tick_seconds": round(steady, 3),
                  "runs_first_tick": runs, "runs_steady_tick": again}
        lines.append(f"{backend} steady {steady:.3f} s")
        report(result, ns.json, f"sensor tick with {ns.files} files ({backend}): steady {steady:.3f} s")
    print(f"sensor tick with {ns.files} files: " + ", ".join(lines))


if __name__ == "__main__":
    main()
