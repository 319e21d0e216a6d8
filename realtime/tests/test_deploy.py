"""docker-compose.yml and nginx.conf stay in step with the code (no Docker here)."""

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from django.conf import settings

from realtime.launcher import server_command
from realtime.launcher_cluster import INSTANCE_TTL_PER_NODE_TIMEOUT, LocalRedisCluster
from realtime.management.commands.realtime_fleet import Command as FleetCommand

ROOT = Path(__file__).resolve().parents[2]
APPS = ("app1", "app2")
SERVICES = {"redis", "postgres", "migrate", "app1", "app2", "worker", "nginx"}
# The profile "cluster": the same fleet on a Redis Cluster of 3 primaries, 3 replicas.
NODES = [f"redis-node-{i}" for i in range(1, 7)]
CLUSTER_FLEET = ["cluster-postgres", "cluster-migrate", "cluster-app1", "cluster-app2"]
CLUSTER_FLEET += ["cluster-worker", "cluster-nginx"]
CLUSTER_SERVICES = {*NODES, "redis-cluster-init", *CLUSTER_FLEET}
# Run once and exit: no health check.
ONE_SHOT = {"migrate", "cluster-migrate", "redis-cluster-init"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def settings_names() -> set[str]:
    source = (ROOT / "realtime" / "settings.py").read_text()
    return set(re.findall(r'env_\w+\("([A-Z_]+)"', source))


def test_the_fleet_has_its_services(services):
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == SERVICES
    assert set(services) - default == CLUSTER_SERVICES
    for name in CLUSTER_SERVICES:
        assert services[name]["profiles"] == ["cluster"], name


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name not in ONE_SHOT:
            check = service.get("healthcheck", {})
            assert check.get("test"), name
            assert check.get("interval"), name


def test_instances_run_the_launchers_uvicorn_command(services):
    for name in APPS:
        env = services[name]["environment"]
        expected = server_command(
            "uvicorn", host="0.0.0.0", port="8000", limit=env["MAX_FRAME_BYTES"]
        )
        assert services[name]["command"] == ["python", "-m", *expected], name
        assert services[name]["expose"] == ["8000"]
        assert "127.0.0.1:8000/healthz" in " ".join(
            services[name]["healthcheck"]["test"]
        )
    # The default of the local launcher is the server compose runs.
    parser = FleetCommand().create_parser("manage.py", "realtime_fleet")
    assert parser.get_default("server") == "uvicorn"


def test_app_environment_names_only_real_settings(services):
    known = settings_names()
    for name in (*APPS, "worker", "migrate", *CLUSTER_FLEET[1:-1]):
        env = services[name]["environment"]
        assert set(env) <= known, (name, set(env) - known)
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_app_environment_points_at_the_compose_services(services):
    env = services["app1"]["environment"]
    redis = urlparse(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    database = urlparse(env["DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert database.hostname == "postgres" and database.port == 5432
    assert (database.username, database.password, database.path) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        f"/{pg['POSTGRES_DB']}",
    )
    for name in (*APPS, "worker"):
        assert services[name]["environment"] == env, name


def test_a_separate_worker_does_the_cleanup(services):
    assert services["worker"]["command"] == ["python", "manage.py", "realtime_worker"]
    for name in APPS:
        assert services[name]["environment"]["WORKER_IN_PROCESS"] == "false"


def test_start_order_waits_for_health_and_migrations(services):
    for name in (*APPS, "worker"):
        deps = services[name]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    for name in APPS:
        assert services["nginx"]["depends_on"][name]["condition"] == "service_healthy"


def nginx_location(services, path: str) -> str:
    """The directives of a location of the nginx service's config, comments out."""
    source = services["nginx"]["volumes"][0].split(":")[0]
    conf = (ROOT / source).read_text()
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    return re.search(rf"location {re.escape(path)} \{{(.*?)\}}", code, re.S).group(1)


def test_nginx_upgrades_websockets_round_robin_to_both_instances(services):
    nginx = services["nginx"]
    assert nginx["ports"] == ["8080:80"]
    source, target = nginx["volumes"][0].split(":")[:2]
    assert target == "/etc/nginx/conf.d/default.conf"
    conf = (ROOT / source).read_text()
    code = "\n".join(line.split("#", 1)[0] for line in conf.splitlines())
    upstream = re.search(r"upstream realtime \{(.*?)\}", code, re.S).group(1)
    assert re.findall(r"server (\S+);", upstream) == [f"{a}:8000" for a in APPS]
    # No stickiness: any instance serves any socket.
    for sticky in ("ip_hash", "sticky", "hash ", "least_conn"):
        assert sticky not in upstream
    ws = nginx_location(services, "/ws/")
    assert "proxy_pass http://realtime;" in ws
    assert "proxy_http_version 1.1;" in ws
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $connection_upgrade;" in ws
    # Idle sockets send a heartbeat every 30 s: the proxy must not cut them first.
    assert int(re.search(r"proxy_read_timeout (\d+)s;", ws).group(1)) > 30


def test_nginx_streams_the_http_fallback_and_takes_its_posts(services):
    # docs/protocol.md "HTTP fallback": /ws/http/ (under /ws/) is a long event stream
    # and POSTs of frames of up to HTTP_POST_MAX_BYTES.
    ws = nginx_location(services, "/ws/")
    assert "proxy_buffering off;" in ws, "each event must reach the browser at once"
    env = services["app1"]["environment"]
    post_max = int(env.get("HTTP_POST_MAX_BYTES", env["MAX_FRAME_BYTES"]))
    body = re.search(r"client_max_body_size (\d+)m;", ws)
    assert body and int(body.group(1)) * 2**20 >= post_max
    # A stream quiet but for keep-alives lives, as the client's liveness rule allows.
    keepalive = float(env.get("HTTP_KEEPALIVE", settings.HTTP_KEEPALIVE))
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", ws).group(1))
    assert read_timeout > 2 * keepalive + 5
    # The Origin check of the stream and of the WebSocket compares a page's origin
    # with Host: it must keep the port the browser used (compose maps 8080).
    for path in ("/ws/", "/"):
        assert "proxy_set_header Host $http_host;" in nginx_location(services, path)


def test_the_image_installs_the_requirements(services):
    build = services["app1"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "python:3.11" in dockerfile


def test_the_image_builds_the_notes_demos_yjs_bundle(services):
    # The bundle is never committed: the image must build it like scripts/js.sh, to
    # the place the notes page loads it from.
    build = services["app1"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    js = (ROOT / "scripts" / "js.sh").read_text()
    bundle = re.search(r'out="([^"]+)"', js).group(1)
    package = json.loads((ROOT / "package.json").read_text())
    assert f"--outfile={bundle}" in package["scripts"]["build"]
    assert "npm ci" in dockerfile and "npm run build" in dockerfile
    vendor = str(Path(bundle).parent)
    assert re.search(rf"COPY --from=\w+ /app/{vendor}/ {vendor}/", dockerfile)
    page = (ROOT / "realtime/static/realtime/demo/notes.js").read_text()
    assert Path(bundle).name in page


# --- the profile "cluster" -----------------------------------------------------------


def names_on(services, network: str) -> set[str]:
    """The host names that resolve on a compose network: its services' names and
    aliases."""
    names = set()
    for name, service in services.items():
        nets = service.get("networks", [])
        if network in nets:
            names.add(name)
            if isinstance(nets, dict):
                names.update((nets[network] or {}).get("aliases", []))
    return names


def test_the_cluster_fleet_is_the_fleet_on_a_network_of_its_own(services):
    for name in CLUSTER_SERVICES:
        assert list(services[name]["networks"]) == ["cluster"], name
    for name in SERVICES:
        assert "networks" not in services[name], name
    # Each mirrors a service of the first fleet (same image, command and check).
    for name in CLUSTER_FLEET:
        original = services[name.removeprefix("cluster-")]
        for key in ("image", "command", "healthcheck", "expose", "build"):
            assert services[name].get(key) == original.get(key), (name, key)
    assert services["cluster-nginx"]["volumes"] == services["nginx"]["volumes"]
    assert services["cluster-nginx"]["ports"] == ["8081:80"]  # next to 8080
    volumes = services["cluster-postgres"]["volumes"]
    assert volumes != services["postgres"]["volumes"]  # a database of its own


def test_every_host_the_cluster_fleet_names_resolves_on_its_network(services):
    reachable = names_on(services, "cluster")
    env = services["cluster-app1"]["environment"]
    hosts = {urlparse(env["REDIS_URL"]).hostname}
    hosts.add(urlparse(env["DATABASE_URL"]).hostname)
    hosts.update(node.split(":")[0] for node in env["REDIS_CLUSTER_NODES"].split(","))
    hosts.update(node.split(":")[0] for node in cluster_init_nodes(services))
    source = services["cluster-nginx"]["volumes"][0].split(":")[0]
    conf = (ROOT / source).read_text()
    hosts.update(re.findall(r"server (\S+):\d+;", conf))
    assert hosts - reachable == set()


def test_cluster_nodes_run_redis_in_cluster_mode(services):
    for name in NODES:
        node = services[name]
        assert node["image"] == services["redis"]["image"], name
        command = node["command"]
        assert command[0] == "redis-server", name
        assert command[command.index("--cluster-enabled") + 1] == "yes", name
        assert node["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"], name


def cluster_init_nodes(services) -> list[str]:
    return services["redis-cluster-init"]["environment"]["CLUSTER_NODES"].split()


def test_the_cluster_is_created_once_the_nodes_are_up(services):
    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert cluster_init_nodes(services) == [f"{n}:6379" for n in NODES]
    for name in NODES:
        assert init["depends_on"][name]["condition"] == "service_healthy"
    source, target = init["volumes"][0].split(":")[:2]
    assert init["command"] == ["sh", target]
    script = (ROOT / source).read_text()
    assert "redis-cli --cluster create" in script
    assert "--cluster-replicas 1 --cluster-yes" in script


def test_the_cluster_fleet_runs_on_the_cluster(services):
    env = services["app1"]["environment"]
    cluster_env = services["cluster-app1"]["environment"]
    assert cluster_env["REDIS_CLUSTER"] == "true"
    first = urlparse(cluster_env["REDIS_URL"])
    assert (first.scheme, first.hostname, first.port) == ("redis", NODES[0], 6379)
    others = cluster_env["REDIS_CLUSTER_NODES"].split(",")
    assert others == [f"{n}:6379" for n in NODES[1:]]
    # Liveness outlasts three failovers (realtime.launcher_cluster says why).
    command = services[NODES[0]]["command"]
    node_timeout = int(command[command.index("--cluster-node-timeout") + 1]) / 1000
    per_timeout = INSTANCE_TTL_PER_NODE_TIMEOUT
    assert float(cluster_env["INSTANCE_TTL"]) >= per_timeout * node_timeout
    redis_names = {"REDIS_URL", "REDIS_CLUSTER", "REDIS_CLUSTER_NODES", "INSTANCE_TTL"}
    assert {k: v for k, v in cluster_env.items() if k not in redis_names} == {
        k: v for k, v in env.items() if k not in redis_names
    }
    for name in CLUSTER_FLEET[1:-1]:
        assert services[name]["environment"] == cluster_env, name
        deps = services[name]["depends_on"]
        assert "redis" not in deps and "postgres" not in deps, name
        assert deps["redis-cluster-init"]["condition"] == (
            "service_completed_successfully"
        )
        assert deps["cluster-postgres"]["condition"] == "service_healthy"
        if name != "cluster-migrate":
            assert deps["cluster-migrate"]["condition"] == (
                "service_completed_successfully"
            )
    for name in ("cluster-app1", "cluster-app2"):
        deps = services["cluster-nginx"]["depends_on"]
        assert deps[name]["condition"] == "service_healthy"


def test_the_init_script_forms_the_cluster_once(services):
    """deploy/redis-cluster-init.sh against six bare redis-servers in cluster mode:
    3 primaries with one replica each, then a second run leaves them alone."""
    init = services["redis-cluster-init"]
    script = ROOT / init["volumes"][0].split(":")[0]
    nodes = LocalRedisCluster()
    try:
        for port in nodes.ports:
            nodes.start_node(port)
        env = {
            **os.environ,
            "CLUSTER_NODES": " ".join(f"127.0.0.1:{p}" for p in nodes.ports),
        }
        first = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert first.returncode == 0, first.stdout + first.stderr
        assert "redis cluster ok" in first.stdout
        for port in nodes.ports:
            info = nodes.node(port).cluster("info")
            assert info["cluster_state"] == "ok" and info["cluster_size"] == "3"
        assert nodes.primary_ports() == sorted(nodes.primaries_at_start)
        ids = {p: nodes.node(p).execute_command("CLUSTER", "MYID") for p in nodes.ports}
        again = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already formed" in again.stdout
        assert ids == {
            p: nodes.node(p).execute_command("CLUSTER", "MYID") for p in nodes.ports
        }
    finally:
        nodes.stop()
