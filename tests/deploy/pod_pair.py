"""deploy/Containerfile and deploy/gateway-pod.yaml, built and run: PostgreSQL and two nodes
in one pod, a document from RU-FSSP to KZ-MJ and its signed receipt back.

    sudo python tests/deploy/pod_pair.py [--root DIR] [--base IMAGE] [--keep]

Needs root and Debian's podman (`apt-get install podman runc debootstrap`). Without ``--base``
the base image is made with debootstrap from the Debian mirror (no container registry needed:
docker.io is unreachable from the CI machines); PostgreSQL then runs from a stand-in for the
official image, built from Debian's postgresql-15 (tests/deploy/postgres.Containerfile) and
tagged with the official name the pod file uses. The gateway image is built offline from a
wheelhouse of this checkout and its locked dependencies (``pip wheel .``).

The pod file is used as shipped but for its host folder (/srv/gateway-pair → ``--root``).
Exit code 0 when the receipt came back accepted and KZ-MJ reads the document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from gateway.demo.setup import NodePorts, build_world  # noqa: E402

POD_FILE = REPO / "deploy" / "gateway-pod.yaml"
POD_ROOT = "/srv/gateway-pair"
GATEWAY_IMAGE = "localhost/cis-gateway:latest"
POSTGRES_IMAGE = "docker.io/library/postgres:15-bookworm"
BASE_IMAGE = "localhost/gateway-bookworm-base:latest"
NODE_UID = 10001
BODIES = {"RU-FSSP": "ru_fssp", "KZ-MJ": "kz_mj"}
DB_PASSWORD = "pod-pair-test-only"
START_SECONDS = 300.0
PURPOSE = "%D0%9F%D1%80%D0%BE%D0%B2%D0%B5%D1%80%D0%BA%D0%B0"  # "Проверка", percent-encoded


def sh(*argv: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(map(str, argv)), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, text=True, **kwargs)


def sandbox_conf(work: Path) -> Path:
    """podman settings for a CI machine that is itself a container: a process there may lower
    its rlimits but not raise them (podman's default raises them), and crun refuses hybrid
    cgroups where runc runs (tested on the CI machine; docs/operations.md, Container)."""
    conf = work / "containers.conf"
    runtime = '[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n' + runtime,
        encoding="utf-8",
    )
    return conf


def debootstrap_base(work: Path) -> str:
    """A Debian bookworm image with python3 (3.11) and venv, from the Debian mirror."""
    rootfs = work / "rootfs"
    sh(
        "debootstrap",
        "--variant=minbase",
        "--include=python3,python3-venv,tzdata,fonts-dejavu-core,ca-certificates",
        "bookworm",
        rootfs,
        "http://deb.debian.org/debian",
    )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True)
    tar.wait()
    return BASE_IMAGE


def build_images(work: Path, base: str) -> None:
    context = work / "context"
    context.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(context)], input=archive.stdout, check=True)
    sh(sys.executable, "-m", "pip", "wheel", "--quiet", str(context), "-w", context / "wheelhouse")
    build = ("podman", "build", "--network", "host", "--build-arg", f"BASE={base}")
    sh(*build, "-f", context / "deploy/Containerfile", "-t", GATEWAY_IMAGE, context)
    sh(
        *build,
        "-f",
        context / "tests/deploy/postgres.Containerfile",
        "-t",
        POSTGRES_IMAGE,
        context,
    )


def free_port() -> int:
    """A port below the kernel's ephemeral range that nothing listens on now.

    The one place that picks a port by trying it: the directory must name each node's ports
    before the containers start, and they run as another user, so a held SO_REUSEPORT socket
    (the integration tests' way) cannot be shared with them. Below the ephemeral range, no
    outgoing connection (the nodes' own to PostgreSQL) can take it in between."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(1000):
        port = random.randrange(low // 2, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in TAKEN:
                TAKEN.add(port)
                return port
    raise RuntimeError("no free port below the ephemeral range")


TAKEN: set[int] = set()


def lay_out(root: Path) -> dict[str, NodePorts]:
    """The host folder the pod file mounts: each node's NODE.toml, keys, trust and secrets."""
    ports = {body: NodePorts(free_port(), free_port(), free_port()) for body in BODIES}
    world = build_world(root / "world", now=datetime.now(UTC), ports=ports, bodies=tuple(BODIES))
    secret = root / "postgres" / "secret"
    secret.mkdir(parents=True)
    (secret / "database-password").write_text(DB_PASSWORD + "\n", encoding="ascii")
    init = root / "postgres" / "init"
    init.mkdir()
    (init / "databases.sql").write_text(
        "".join(f"CREATE DATABASE {db};\n" for db in BODIES.values()), encoding="ascii"
    )
    states = sorted({b.split("-")[0] for b in BODIES})
    for body, database in BODIES.items():
        source = world.nodes[body].config_path.parent
        node = root / body
        shutil.copytree(source / "keys", node / "keys")
        shutil.copytree(world.root / "trust", node / "trust")
        shutil.copy(world.root / "directory.xml", node / "directory.xml")
        shutil.copy(source / "passphrase", node / "passphrase")
        (node / "database-password").write_text(DB_PASSWORD + "\n", encoding="ascii")
        crls = ", ".join(f'"trust/{s}-crl.pem"' for s in states)
        p = ports[body]
        (node / "node.toml").write_text(
            f"""[node]
body_id = "{body}"
data_dir = "/var/lib/gateway"
timezone = "{"Asia/Almaty" if body.startswith("KZ") else "Europe/Moscow"}"

[database]
url = "postgresql+psycopg://postgres@127.0.0.1:5433/{database}"
password_file = "database-password"

[keys]
dir = "keys"
passphrase_file = "passphrase"
official = "chief"

[trust]
ca_file = "trust/bodies-ca.pem"
crl_files = [{crls}]
depositary_ca_file = "trust/depositary-ca.pem"
directory_file = "directory.xml"

[peer]
host = "127.0.0.1"
port = {p.peer}

[api]
host = "127.0.0.1"
port = {p.api}

[console]
host = "127.0.0.1"
port = {p.console}
""",
            encoding="utf-8",
        )
        for path in (node, *node.rglob("*")):
            os.chown(path, NODE_UID, NODE_UID)
            path.chmod(0o700 if path.is_dir() else 0o600)
    return ports


def api(port: int, method: str, path: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Purpose": PURPOSE,
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def token(body: str) -> str:
    container = f"gateway-pair-{body.lower()}"
    done = sh(
        "podman",
        "exec",
        container,
        "gateway",
        "tokens",
        "add",
        "--config",
        "/etc/gateway/node.toml",
        "--label",
        "pod-test",
        "--role",
        "operator",
        "--role",
        "confidential-reader",
        capture_output=True,
    )
    return done.stdout.strip()


def exchange(ports: dict[str, NodePorts]) -> None:
    from benchmarks.gateway_hop import request_document

    for body in BODIES:
        wait_healthy(ports[body].api)
    ru, kz = token("RU-FSSP"), token("KZ-MJ")
    document = request_document()
    assert document["header"]["Recipient"] == "KZ-MJ", document["header"]
    sent = api(ports["RU-FSSP"].api, "POST", "/messages", ru, document)
    message_id = sent["message_id"]
    deadline = time.monotonic() + START_SECONDS
    while True:
        message = api(ports["RU-FSSP"].api, "GET", f"/messages/{message_id}", ru)
        if message["summary"]["delivery_state"] in ("delivered", "failed"):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{message_id} not delivered: {message['summary']}")
        time.sleep(1)
    receipt = message.get("receipt") or {}
    assert receipt.get("outcome") == "accepted", message
    received = api(ports["KZ-MJ"].api, "GET", f"/messages/{message_id}", kz)
    assert received["summary"]["message_id"] == message_id, received
    print(f"RU-FSSP → KZ-MJ: {message_id} delivered, receipt accepted, read at KZ-MJ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, help="host folder for the pod (default: a temp dir)")
    parser.add_argument("--base", help="base image with python3 3.11 (default: debootstrap one)")
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    parser.add_argument("--keep", action="store_true", help="leave the pod running")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-pod-"))
    os.environ.setdefault("CONTAINERS_CONF", str(sandbox_conf(work)))
    root = (args.root or work / "pair").resolve()
    if not args.no_build:
        build_images(work, args.base or debootstrap_base(work))
    ports = lay_out(root)
    pod_file = work / "gateway-pod.yaml"
    pod_file.write_text(POD_FILE.read_text("utf-8").replace(POD_ROOT, str(root)), "utf-8")
    sh("podman", "kube", "play", pod_file)
    try:
        exchange(ports)
    except BaseException:
        for container in ("postgres", "ru-fssp", "kz-mj"):
            subprocess.run(["podman", "logs", "--tail", "40", f"gateway-pair-{container}"])
        raise
    finally:
        if not args.keep:
            subprocess.run(["podman", "kube", "down", str(pod_file)], check=False)
            for claim in ("postgres", "ru-fssp", "kz-mj"):
                subprocess.run(["podman", "volume", "rm", "-f", f"gateway-pair-{claim}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
