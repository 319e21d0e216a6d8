"""A real nginx (Debian's package) in front of server processes, on a loopback port:
round robin with no stickiness, as deploy/nginx.conf, and a switch that makes it
refuse the WebSocket Upgrade, as proxies that break WebSockets do.

    with Nginx([one.port, two.port], refuse_upgrade=True) as proxy:
        ...  # proxy.http, proxy.ws
        proxy.set_refuse_upgrade(False)  # reload: old workers cut their streams
"""

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from realtime.launcher import die_with_parent, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# After a reload, old workers cut the connections they still hold after this: the
# streams and sockets they carried reconnect through the new configuration.
SHUTDOWN_TIMEOUT = "1s"
REFUSE = "if ($http_upgrade) { return 403; }\n"

CONFIG = """
daemon off;
master_process on;
worker_processes 1;
worker_shutdown_timeout {shutdown};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
user root;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream realtime {{
{servers}
        keepalive 16;
    }}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 17m;
        location /ws/ {{
            include {dir}/upgrade.conf;
            proxy_pass http://realtime;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
        location / {{
            proxy_pass http://realtime;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


class Nginx:
    """nginx on a free loopback port in front of `upstream_ports`."""

    def __init__(self, upstream_ports: list[int], *, refuse_upgrade: bool = False):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.conf = self.dir / "nginx.conf"
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
        self.conf.write_text(
            CONFIG.format(
                dir=self.dir, port=self.port, servers=servers, shutdown=SHUTDOWN_TIMEOUT
            )
        )
        self._write_upgrade(refuse_upgrade)
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        """WebSocket URL of /ws/."""
        return f"ws://127.0.0.1:{self.port}/ws/"

    def _write_upgrade(self, refuse: bool) -> None:
        (self.dir / "upgrade.conf").write_text(REFUSE if refuse else "")

    def _nginx(self, *args: str) -> list[str]:
        return [NGINX, "-p", str(self.dir), "-c", str(self.conf), *args]

    def start(self, timeout: float = 10.0) -> "Nginx":
        """Start nginx and wait until it proxies /healthz."""
        subprocess.run(self._nginx("-t", "-q"), check=True, capture_output=True)
        self.proc = subprocess.Popen(
            self._nginx(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1):
                    return self
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(self.error_log()) from None
                time.sleep(0.1)

    def set_refuse_upgrade(self, refuse: bool) -> None:
        """Refuse (or allow) the WebSocket Upgrade from now on, by a reload."""
        self._write_upgrade(refuse)
        subprocess.run(self._nginx("-s", "reload"), check=True, capture_output=True)

    def error_log(self) -> str:
        """What nginx logged (warnings and errors)."""
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Nginx":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
