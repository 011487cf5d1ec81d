"""The stack's PKI outlives stacks in the cache: certificates near their end are made anew."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from devstack import pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_a_fresh_pki_is_kept_as_it_is(tmp_path: Path) -> None:
    first = pki.ensure(tmp_path)
    ca, apiserver = first.ca_crt.read_bytes(), first.crt("apiserver").read_bytes()
    pki.ensure(tmp_path)
    assert (first.ca_crt.read_bytes(), first.crt("apiserver").read_bytes()) == (ca, apiserver)
    assert not pki.expiring(first.ca_crt)
    assert pki.expiring(first.ca_crt, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=340))


def test_a_ca_near_its_end_is_replaced_with_every_leaf_it_signed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = pki.ensure(tmp_path)
    old_ca = _cert(old.ca_crt)
    sa_key = old.sa_key.read_bytes()
    monkeypatch.setattr(pki, "RENEW_BEFORE", dt.timedelta(days=400))  # everything is "near"
    new = pki.ensure(tmp_path)
    monkeypatch.undo()
    new_ca = _cert(new.ca_crt)
    assert new_ca.serial_number != old_ca.serial_number
    for leaf in ("apiserver", "admin", "controller-manager", "scheduler", "kwok"):
        cert = _cert(new.crt(leaf))
        cert.verify_directly_issued_by(new_ca)  # raises if signed by the old CA
        assert not pki.expiring(new.crt(leaf))
    assert new.sa_key.read_bytes() == sa_key  # tokens stay valid: the SA key is not a cert


def test_a_restart_of_some_components_never_renews_under_the_running_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new CA while the controller-manager and the operator run with the old certificates
    # would lock them out: only a full start renews.
    old = pki.ensure(tmp_path)
    ca = old.ca_crt.read_bytes()
    monkeypatch.setattr(pki, "RENEW_BEFORE", dt.timedelta(days=400))
    pki.ensure(tmp_path, renew=False)
    assert old.ca_crt.read_bytes() == ca
