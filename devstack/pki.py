"""A throwaway PKI for the local control plane.

The apiserver serves TLS with a certificate signed by our own CA; clients (kubectl, the
controller-manager, the scheduler, kwok, the operator under test) authenticate with client
certificates, like a kubeadm cluster. Keys are regenerated only when missing or close to their
end (the PKI outlives stacks in the cache: a year-old one would fail every TLS handshake), so
a restarted stack keeps working kubeconfigs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Inside-cluster address of the `kubernetes` Service; no traffic ever flows to it here.
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
#: Certificates this close to their end are made anew when a stack starts.
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def ca_crt(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def crt(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(
        now + dt.timedelta(days=365)
    )


def expiring(crt: Path, *, now: dt.datetime | None = None) -> bool:
    """Whether the certificate in ``crt`` ends within ``RENEW_BEFORE`` (or has ended)."""
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    return cert.not_valid_after_utc - (now or dt.datetime.now(dt.UTC)) < RENEW_BEFORE


def ensure(root: Path, *, renew: bool = True) -> Pki:
    """Create the CA, serving and client certificates under ``root`` unless they exist; with
    ``renew``, also those close to their end. A restart of some components of a running stack
    passes ``renew=False``: a new CA would lock out the components still running (a revive
    with certificates that have already ended fails its TLS wait and starts the stack anew)."""
    pki = Pki(root)
    root.mkdir(parents=True, exist_ok=True)
    if renew and pki.ca_crt.exists() and expiring(pki.ca_crt):
        # Every leaf was signed by the old CA: all of them go with it.
        for crt in root.glob("*.crt"):
            crt.unlink()
    if not pki.ca_crt.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _validity(
            x509.CertificateBuilder()
            .subject_name(_name("modeldeploy-local-ca"))
            .issuer_name(_name("modeldeploy-local-ca"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
        ).sign(ca_key, hashes.SHA256())
        _write_key(pki.ca_key, ca_key)
        pki.ca_crt.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    if not pki.sa_key.exists():
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(pki.sa_key, sa)
        pki.sa_pub.write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ))
    _leaf(pki, "apiserver", renew=renew, cn="kube-apiserver", server=True, sans=[
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "127.0.0.1", KUBERNETES_SERVICE_IP,
    ])
    _leaf(pki, "admin", renew=renew, cn="modeldeploy-admin", org="system:masters")
    _leaf(pki, "controller-manager", renew=renew, cn="system:kube-controller-manager")
    _leaf(pki, "scheduler", renew=renew, cn="system:kube-scheduler")
    # kwok acts for every fake kubelet; it needs node and pod status writes across the cluster.
    _leaf(pki, "kwok", renew=renew, cn="kwok-controller", org="system:masters")
    return pki


def _leaf(
    pki: Pki,
    name: str,
    *,
    renew: bool,
    cn: str,
    org: str | None = None,
    server: bool = False,
    sans: list[str] | None = None,
) -> None:
    if pki.crt(name).exists() and not (renew and expiring(pki.crt(name))):
        return
    ca_key = _load_key(pki.ca_key)
    ca = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if sans:
        entries: list[x509.GeneralName] = []
        for san in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                entries.append(x509.DNSName(san))
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki.key(name), key)
    pki.crt(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
