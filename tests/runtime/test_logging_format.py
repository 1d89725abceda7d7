"""--logging-format, as kube-proxy's: every service logs text lines or JSON objects, one a line,
for the log pipelines that parse them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kpng_agent.kubeproxyconfig import translate
from kpng_agent.main import parser as agent_parser
from kpng_observer.main import parser as observer_parser
from kpng_watcher.main import parser as watcher_parser

AGENT = Path(sys.executable).with_name("kpng-agent")


def test_a_service_logs_json_objects_when_asked() -> None:
    """The real command: each line a JSON object with the time, level, logger and message
    (no bus: --init-only says what it did and exits)."""
    argv = [str(AGENT), "--init-only", "--node", "n1", "--backend", "dump"]
    done = subprocess.run(
        [*argv, "--logging-format", "json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    (said,) = [x for x in lines if "initialization done" in x["msg"]]
    assert said["level"] == "INFO" and said["logger"] == "kpng_agent.main"
    assert isinstance(said["ts"], float)
    text = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert " INFO kpng_agent.main: --init-only: initialization done" in text.stderr


def test_an_exception_is_one_json_line_with_its_traceback() -> None:
    code = (
        "import logging\n"
        "from kpng.runtime.process import setup_logging\n"
        "setup_logging('info', 'json')\n"
        "try:\n"
        "    {}['missing']\n"
        "except KeyError:\n"
        "    logging.getLogger('kpng.x').exception('lookup failed')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    (line,) = done.stderr.splitlines()
    got = json.loads(line)
    assert got["msg"] == "lookup failed" and got["level"] == "ERROR"
    assert "KeyError: 'missing'" in got["exc_info"]


@pytest.mark.parametrize(
    ("make", "base"),
    [
        (agent_parser, ["--node", "n1"]),
        (watcher_parser, ["--source", "kube"]),
        (observer_parser, []),
    ],
)
def test_every_service_takes_it_and_refuses_another(
    make: Callable[[], argparse.ArgumentParser], base: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    p = make()
    assert p.parse_args([*base, "--logging-format", "json"]).logging_format == "json"
    with pytest.raises(SystemExit):
        p.parse_args([*base, "--logging-format", "yaml"])
    assert "invalid choice: 'yaml'" in capsys.readouterr().err


def test_kube_proxys_logging_format_field_is_taken() -> None:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "logging": {"format": "json", "verbosity": 2, "flushFrequency": "5s"},
    }
    assert translate(doc) == {"logging-format": "json"}
