"""docker-compose.yml and nginx.conf stay in step with the code (no Docker here)."""

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from django.conf import settings

from realtime.launcher import server_command
from realtime.management.commands.realtime_fleet import Command as FleetCommand

ROOT = Path(__file__).resolve().parents[2]
APPS = ("app1", "app2")
SERVICES = {"redis", "postgres", "migrate", "app1", "app2", "worker", "nginx"}


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
    assert set(services) == SERVICES


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if name != "migrate":
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
    for name in (*APPS, "worker", "migrate"):
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
