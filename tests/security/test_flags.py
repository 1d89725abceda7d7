"""Security is on by default: the bus flags, their environment variables, and the opt-out."""

from __future__ import annotations

import argparse
import logging

import pytest

from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.runtime.config import env_name, parse_args
from kpng_agent.main import main as agent_main
from kpng_watcher.main import main as watcher_main


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="kpng-test")
    add_bus_arguments(p)
    return p, parse_args(p, argv)


def test_a_program_without_credentials_or_tls_refuses_to_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        watcher_main(["--source", "file:/nonexistent.yaml", "--nats", "nats://127.0.0.1:1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no NATS credentials and TLS" in err and "--nats-insecure" in err
    with pytest.raises(SystemExit):
        agent_main(["--node", "n1", "--dump-file", "/tmp/x", "--nats-user", "agent"])
    assert "--nats-user and --nats-password-file go together" in capsys.readouterr().err


def test_credentials_without_tls_are_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    p, args = parse(["--nats-token-file", "/run/token"])
    with pytest.raises(SystemExit):
        bus_auth(args, p)
    assert "no NATS TLS" in capsys.readouterr().err
    p, args = parse(["--nats-token-file", "/run/token", "--nats", "tls://nats:4222"])
    assert bus_auth(args, p).method == "token"


def test_the_opt_out_is_explicit_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    p, args = parse(["--nats-insecure"])
    with caplog.at_level(logging.WARNING):
        auth = bus_auth(args, p)
    assert auth.insecure
    warnings = [r for r in caplog.records if "without credentials or TLS" in r.getMessage()]
    assert len(warnings) == 1 and "anyone who can reach" in warnings[0].getMessage()


def test_every_flag_reads_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPNG_NATS", "tls://a:4222,tls://b:4222")
    monkeypatch.setenv("KPNG_NATS_CREDS", "/run/kpng/agent.creds")
    monkeypatch.setenv("KPNG_NATS_TLS_CA", "/run/kpng/ca.pem")
    p, args = parse([])
    auth = bus_auth(args, p)
    assert (auth.creds_file, auth.tls_ca, args.nats) == (
        "/run/kpng/agent.creds",
        "/run/kpng/ca.pem",
        "tls://a:4222,tls://b:4222",
    )
    assert env_name("--nats-tls-server-name") == "KPNG_NATS_TLS_SERVER_NAME"
    monkeypatch.setenv("KPNG_NATS_INSECURE", "1")
    monkeypatch.delenv("KPNG_NATS_CREDS")
    p, args = parse([])
    assert bus_auth(args, p).insecure


def test_two_credential_kinds_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    p, args = parse(["--nats-creds", "a.creds", "--nats-nkey", "a.nk", "--nats-tls-ca", "ca"])
    with pytest.raises(SystemExit):
        bus_auth(args, p)
    assert "give one of" in capsys.readouterr().err
