"""A real Kubernetes API server for tests: etcd + kube-apiserver on free 127.0.0.1 ports.

The envtest recipe, without a controller-manager or a scheduler: objects are stored and
validated (schemas, CRDs, admission, RBAC) but nothing reconciles them, so a Deployment never
gets Pods and a Job never runs. That is what chart and operator tests need.

    server = KubeAPIServer.start()
    subprocess.run(["kubectl", "--kubeconfig", server.kubeconfig, "get", "ns"])
    server.stop()

The binaries come from `tools/provision/kube.sh` (built into `.cache/bin/`), else from PATH.
The admin user authenticates with a bearer token (group system:masters); the serving
certificate, its CA and the service-account key are generated into the handle's directory.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where tools/provision/kube.sh puts its binaries (MOLSTREAM_CACHE moves the whole cache).
CACHE_BIN = Path(os.environ.get("MOLSTREAM_CACHE", REPO_ROOT / ".cache")) / "bin"
PROVISION_HINT = "run `tools/provision/kube.sh` (as root) to install etcd and build it"


class MissingBinaryError(RuntimeError):
    """A tool of the Kubernetes test environment is not installed."""


def find_binary(name: str) -> Path:
    """Find `name` in `.cache/bin/` (where the provision script puts it), else on PATH."""
    candidate = CACHE_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinaryError(f"{name} not found in {CACHE_BIN} nor on PATH: {PROVISION_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_pki(directory: Path) -> None:
    """CA, serving certificate for 127.0.0.1/localhost, service-account key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    now = _dt.datetime.now(_dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "molstream-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(key_pem(serving_key))
    (directory / "sa.key").write_bytes(key_pem(sa_key))
    (directory / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _kubeconfig(*, url: str, ca_file: Path, token: str) -> str:
    # certificate-authority as a path: the directory lives as long as the server does.
    return f"""apiVersion: v1
kind: Config
clusters:
- name: molstream-test
  cluster:
    server: {url}
    certificate-authority: {ca_file}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: molstream-test
  context:
    cluster: molstream-test
    user: admin
    namespace: default
current-context: molstream-test
"""


class KubeAPIServer:
    """Handle on a Kubernetes API server: `kubeconfig` (a file path) and `url`.

    `start()` runs a private etcd and kube-apiserver; `existing()` wraps a server that someone
    else runs (then `stop()` does nothing).
    """

    def __init__(self, *, kubeconfig: Path, url: str, directory: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.url = url
        self.directory = directory
        self._processes: list[subprocess.Popen[bytes]] = []
        self._owned_directory: tempfile.TemporaryDirectory[str] | None = None
        self._token = ""

    @classmethod
    def existing(cls, kubeconfig: str | Path) -> KubeAPIServer:
        path = Path(kubeconfig)
        if not path.is_file():
            raise FileNotFoundError(f"kubeconfig {path} does not exist")
        return cls(kubeconfig=path, url="")

    @classmethod
    def start(cls, directory: Path | None = None, *, timeout: float = 90.0) -> KubeAPIServer:
        """Start etcd and kube-apiserver with their files under `directory` (a temp dir if None)."""
        etcd = find_binary("etcd")
        apiserver = find_binary("kube-apiserver")
        owned = None
        if directory is None:
            owned = tempfile.TemporaryDirectory(prefix="molstream-kube-")
            directory = Path(owned.name)
        directory.mkdir(parents=True, exist_ok=True)
        _write_pki(directory)

        token = secrets.token_hex(16)
        (directory / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        etcd_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
        url = f"https://127.0.0.1:{api_port}"
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(_kubeconfig(url=url, ca_file=directory / "ca.crt", token=token))
        kubeconfig.chmod(0o600)

        server = cls(kubeconfig=kubeconfig, url=url, directory=directory)
        server._owned_directory = owned
        server._token = token
        try:
            server._spawn(
                "etcd",
                [
                    str(etcd),
                    "--name=molstream-test",
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=molstream-test=http://127.0.0.1:{peer_port}",
                    "--log-level=warn",
                ],
            )
            server._spawn(
                "kube-apiserver",
                [
                    str(apiserver),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--cert-dir={directory}",
                    f"--tls-cert-file={directory / 'apiserver.crt'}",
                    f"--tls-private-key-file={directory / 'apiserver.key'}",
                    f"--token-auth-file={directory / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={url}",
                    f"--service-account-key-file={directory / 'sa.pub'}",
                    f"--service-account-signing-key-file={directory / 'sa.key'}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    "--v=1",
                ],
            )
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.directory is not None
        with open(self.directory / f"{name}.log", "wb") as log:  # the child keeps its own copy
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._processes.append(process)

    def log_tail(self, name: str, lines: int = 30) -> str:
        if self.directory is None or not (self.directory / f"{name}.log").exists():
            return ""
        text = (self.directory / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> None:
        assert self.directory is not None
        context = ssl.create_default_context(cafile=str(self.directory / "ca.crt"))
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self._token}"}
        )
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            for process, name in zip(self._processes, ("etcd", "kube-apiserver"), strict=False):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {process.returncode}:\n{self.log_tail(name)}"
                    )
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.25)
        raise TimeoutError(
            f"kube-apiserver not ready after {timeout:.0f}s ({last_error}):\n"
            f"{self.log_tail('kube-apiserver')}"
        )

    def stop(self) -> None:
        """Stop the API server, then etcd, and remove the temp dir if this handle made it."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()
        if self._owned_directory is not None:
            self._owned_directory.cleanup()
            self._owned_directory = None

    def __enter__(self) -> KubeAPIServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
