"""STARTTLS, implicit TLS and SMTP AUTH against a local TLS relay with a throwaway certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from notifications.capture import CaptureServer
from notifications.digest import build_critical_alerts
from notifications.mail import SmtpConfig, SmtpSender
from notifications.outbox import deliver_due, enqueue, outbox_counts

from .conftest import NOW, TEMPLATES


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


# aiosmtpd cannot see that an implicit-TLS socket is encrypted and warns about AUTH over it.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login(con, content, tmp_path, certificate, security):
    cert, context = certificate
    relay = CaptureServer(
        tmp_path / "mail",
        tls=context,
        implicit_tls=security == "ssl",
        credentials=("mailer", "s3cret-pw"),
    )
    with relay:
        enqueue(con, build_critical_alerts(con, TEMPLATES, content, NOW), NOW)
        wrong = SmtpSender(
            SmtpConfig(
                port=relay.port,
                security=security,
                user="mailer",
                password="wrong-pw",
                ca_file=str(cert),
            )
        )
        report = deliver_due(con, {"email": wrong}, NOW)
        assert report.dead == 2 and relay.messages() == []
        assert all("wrong-pw" not in e for e in report.errors)  # secrets stay out of errors
        con.execute("update ops.outbox set status = 'pending', attempts = 0")
        right = SmtpSender(
            SmtpConfig(
                port=relay.port,
                security=security,
                user="mailer",
                password="s3cret-pw",
                ca_file=str(cert),
            )
        )
        assert deliver_due(con, {"email": right}, NOW).sent == 2
        assert len(relay.messages()) == 2
    assert outbox_counts(con)["sent"] == 2
    assert "s3cret-pw" not in repr(right.config)


def test_login_defaults_to_starttls_and_never_goes_out_in_the_clear():
    assert SmtpConfig(host="smtp.example.com", user="mailer").security == "starttls"
    assert SmtpConfig().security == "plain"  # no login: the demo's local capture server
    with pytest.raises(ValueError, match="SMTP_SECURITY=starttls or ssl"):
        SmtpConfig(host="smtp.example.com", user="mailer", security="plain")
    with pytest.raises(ValueError, match="SMTP_ALLOW_PLAIN_LOGIN"):
        SmtpConfig(host="10.1.2.3", user="mailer", security="plain")
    # This machine, or an explicit opt-in for a trusted network, may log in without TLS.
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.9"):
        assert SmtpConfig(host=host, user="mailer", security="plain").security == "plain"
    allowed = SmtpConfig(
        host="relay.internal", user="mailer", security="plain", allow_plain_login=True
    )
    assert allowed.security == "plain"


def test_the_dagster_resource_reads_the_same_rules_from_the_environment(monkeypatch):
    from orchestration.defs.deliveries import deliveries_resources

    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_USER", "mailer")
    monkeypatch.delenv("SMTP_SECURITY", raising=False)
    monkeypatch.delenv("SMTP_ALLOW_PLAIN_LOGIN", raising=False)
    settings = deliveries_resources()["smtp"].process_config_and_initialize().settings()
    assert settings.security == "starttls"
    monkeypatch.setenv("SMTP_SECURITY", "plain")
    with pytest.raises(ValueError, match="unencrypted"):
        deliveries_resources()["smtp"].process_config_and_initialize().settings()
