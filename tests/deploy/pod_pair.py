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
import re
import shutil
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

from gateway.demo.setup import (  # noqa: E402
    DemoWorld,
    NodePorts,
    build_world,
    publish_endpoints,
)
from gateway.exchange.directory import parse_directory_xml  # noqa: E402

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


def lay_out(root: Path) -> DemoWorld:
    """The host folder the pod file mounts: each node's NODE.toml, keys, trust and secrets.

    Every port is 0: each node binds free ones and prints them (``bound_ports``); the directory
    is then re-issued with the bound peer endpoints (``publish``). No port is picked by trying
    it, which another process could take in between."""
    world = build_world(root / "world", now=datetime.now(UTC), bodies=tuple(BODIES))
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
port = 0

[api]
host = "127.0.0.1"
port = 0

[console]
host = "127.0.0.1"
port = 0
""",
            encoding="utf-8",
        )
        for path in (node, *node.rglob("*")):
            os.chown(path, NODE_UID, NODE_UID)
            path.chmod(0o700 if path.is_dir() else 0o600)
    return world


BOUND = re.compile(
    r"узел (?P<body>\S+): (?:\d+ процесса\(ов\), )?peer https://[^:]+:(?P<peer>\d+), "
    r"API https?://[^:]+:(?P<api>\d+)/api/v1, консоль https?://[^:]+:(?P<console>\d+)"
)
"""The line ``gateway serve`` prints once it listens (one worker or several): the ports it
bound."""


def container(body: str) -> str:
    return f"gateway-pair-{body.lower()}"


def logs(body: str) -> str:
    done = subprocess.run(["podman", "logs", container(body)], capture_output=True, text=True)
    return done.stdout + done.stderr


def bound_ports() -> dict[str, NodePorts]:
    """Each node's ports, read back from its start line (the last one: a node started before
    PostgreSQL exits and is started again, on other ports)."""
    deadline = time.monotonic() + START_SECONDS
    ports: dict[str, NodePorts] = {}
    while len(ports) < len(BODIES):
        for body in BODIES:
            lines = [m for m in BOUND.finditer(logs(body)) if m["body"] == body]
            if lines:
                last = lines[-1]
                ports[body] = NodePorts(int(last["peer"]), int(last["api"]), int(last["console"]))
        if len(ports) < len(BODIES):
            if time.monotonic() > deadline:
                raise AssertionError(f"no start line from {sorted(set(BODIES) - set(ports))}")
            time.sleep(1)
    return ports


def publish(world: DemoWorld, root: Path, ports: dict[str, NodePorts]) -> None:
    """Re-issue the directory with the bound peer endpoints, put it in each node's folder and
    wait until both nodes have it in force (their directory watcher, as for a depositary's
    update)."""
    directory = parse_directory_xml(world.directory_file.read_bytes())
    new = publish_endpoints(world.root, directory, ports, now=datetime.now(UTC))
    for body in BODIES:
        staged = root / body / "directory.xml.new"
        shutil.copy(world.root / "directory.xml", staged)
        os.chown(staged, NODE_UID, NODE_UID)
        staged.chmod(0o600)
        staged.replace(root / body / "directory.xml")  # atomic: never half a file
    deadline = time.monotonic() + START_SECONDS
    for body in BODIES:
        while f"directory version {new.version} in force" not in logs(body):
            if time.monotonic() > deadline:
                raise AssertionError(f"{body} did not take directory version {new.version}")
            time.sleep(1)


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
    done = sh(
        "podman",
        "exec",
        container(body),
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
    world = lay_out(root)
    pod_file = work / "gateway-pod.yaml"
    pod_file.write_text(POD_FILE.read_text("utf-8").replace(POD_ROOT, str(root)), "utf-8")
    sh("podman", "kube", "play", pod_file)
    try:
        ports = bound_ports()
        publish(world, root, ports)
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
