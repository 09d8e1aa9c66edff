"""Bad input gets a clear answer: one table of what users get wrong, each with
the exit code and the words of the answer they must see. Usage errors (exit 4)
are one line; problems of the host (exit 1) are a check's message in the
results. No traceback reaches the user in any case."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from configs import SYNTHETIC
from conftest import ROOT, Suite
from hoststate import HostState
from paths import path_without


@dataclass(frozen=True)
class BadInput:
    args: tuple[str, ...]
    code: int
    words: tuple[str, ...]
    # Where the words are: the one line a refused run prints, or a check's message.
    check: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    without: tuple[str, ...] = ()  # commands not installed (left off PATH)
    user: str | None = None
    # Builds a lab network on the way: waits for the host-wide lock like every such test.
    host_wide: bool = False

    @property
    def unit(self) -> bool:
        """Answered before anything is built or entered, as any user: part of the unit tier."""
        needs_root = any(word in arg for arg in self.args for word in ("--profile=lab", "nogold"))
        return self.code == 4 and not self.host_wide and self.user is None and not self.without and not needs_root

def _profile(text: str, *words: str) -> BadInput:
    return BadInput(("--profile={dir}/bad.yaml",), 4, ("bad.yaml", *words), files={"bad.yaml": text.encode()})


BAD_INPUTS = {
    # Profiles: every kind of mistake is one line naming file, line and key.
    "profile-yaml-syntax": _profile("categories: [kernel\n", "YAML syntax error"),
    "profile-duplicate-key": _profile("categories: [kernel]\ncategories: [host]\n", ":2:", "duplicate key 'categories'", "line 1"),
    "profile-unknown-key": _profile("categories: [kernel]\ncategorys: [host]\n", ":2:", "unknown key 'categorys'"),
    "profile-wrong-type": _profile("categories: kernel\n", ":1:", "categories", "expected a list"),
    "profile-wrong-type-nested": _profile("checks:\n  kernel.vlan: {required: 'yes'}\n", ":2:", "checks.kernel.vlan.required", "true or false"),
    "profile-unknown-category": _profile("categories: [kernal]\n", ":1:", "'kernal' is not one of"),
    "profile-unknown-check": _profile("checks:\n  kernel.vlna: {required: true}\n", ":2:", "checks.kernel.vlna", "no check has this id"),
    "profile-not-a-mapping": _profile("- kernel\n", ":1:", "mapping"),
    "profile-empty-file": _profile("", "empty"),
    "profile-binary": _profile("\x00\x01\x7f binary\n", "not a YAML text file", "control characters"),
    "profile-extends-missing": _profile("extends: nosuchprofile\n", ":1:", "extends", "nosuchprofile"),
    "profile-extends-itself": _profile("extends: bad.yaml\n", "extends loop", "bad -> bad"),
    "profile-negative-samples": _profile("containers: {samples: -3}\n", "containers.samples", "at least 0"),
    "profile-unknown-clone-method": _profile("containers: {clone: rsync}\n", "containers.clone", "'rsync' is not one of"),
    "profile-bad-mac-prefix": _profile("containers: {mac_prefix: '52:5'}\n", "containers.mac_prefix"),
    "profile-static-plan-not-an-address": _profile("containers:\n  addresses: {plan: static, first: ten/24}\n", ":2:", "containers.addresses.first"),
    "profile-negative-sysctl-minimum": _profile("host:\n  sysctl:\n    fs.aio-max-nr: {min: -1}\n", ":3:", "host.sysctl.fs.aio-max-nr.min", "at least 0"),
    "profile-unknown-network-key": _profile("network: {bridge: br0, uplnk: eth0}\n", ":1:", "unknown key 'network.uplnk'"),
    # Options.
    "option-unknown-profile": BadInput(("--profile=nosuch",), 4, ("--profile=nosuch", "unknown profile", "kernel")),
    "option-profile-file-missing": BadInput(("--profile=/nonexistent/p.yaml",), 4, ("no such file",)),
    "option-kernel-config-missing": BadInput(("--kernel-config=/nonexistent/config",), 4, ("--kernel-config=/nonexistent/config", "no such file")),
    "option-kernel-config-a-directory": BadInput(("--kernel-config=/etc",), 4, ("not a regular file",)),
    "option-negative-samples": BadInput(("--profile=lab", "--samples=-1"), 4, ("--samples=-1", "0 or more")),
    "option-samples-not-a-number": BadInput(("--profile=lab", "--samples=many"), 4, ("--samples=many", "0 or more")),
    "option-samples-beyond-any-host": BadInput(("--profile=lab", "--samples=99999999999999999999"), 4, ("at most 500",)),
    "option-empty-profile-name": BadInput(("--profile=",), 4, ("--profile=", "unknown profile")),
    "option-kernel-config-unreadable-device": BadInput(("--kernel-config=/proc/self/mem",), 4, ("cannot read it",)),
    "profile-too-many-samples": _profile("containers: {samples: 100000}\n", "containers.samples", "at most 500"),
    "option-gold-not-a-name": BadInput(("--profile=lab", "--gold=../etc"), 4, ("--gold=../etc", "not a container name")),
    "option-report-dir-is-a-file": BadInput(("--report-dir={dir}/file",), 4, ("not a directory",), files={"file": b""}),
    "option-report-dir-unwritable": BadInput(("--report-dir=/proc/sys",), 4, ("--report-dir=/proc/sys", "cannot write there")),
    # Kernel configs: the run goes on, the config check says what is wrong with the file.
    "kernel-config-empty": BadInput(("--kernel-config={dir}/config",), 1, ("empty",), "kernel.config_file", {"config": SYNTHETIC["empty"]}),
    "kernel-config-binary": BadInput(("--kernel-config={dir}/config",), 1, ("binary",), "kernel.config_file", {"config": SYNTHETIC["binary-garbage"]}),
    "kernel-config-truncated-gzip": BadInput(("--kernel-config={dir}/config.gz",), 1, ("damaged gzip",), "kernel.config_file", {"config.gz": SYNTHETIC["gzip-truncated"]}),
    # The host: what is missing is named by the check that needs it.
    # A gold that is not there is said before anything runs, with what is there.
    "gold-container-missing": BadInput(
        ("--profile={dir}/nogold.yaml", "--samples=1"), 4,
        ("nogold: containers.gold: lxcct-nosuch-gold: there is no container lxcct-nosuch-gold in /var/lib/lxc (",),
        files={"nogold.yaml": f"extends: {ROOT}/profiles/lab.yaml\ncategories: [containers]\n"
                              "containers: {gold: lxcct-nosuch-gold, build_gold: false, ssh: {user: s, password_env: HOME}}\n".encode()}),
    "bridge-missing": BadInput(
        ("--profile={dir}/nobridge.yaml",), 1, ("no link lxcctnobr0",), "network.bridge_exists",
        {"nobridge.yaml": b"categories: [network]\nnetwork: {bridge: lxcctnobr0}\n"}),
    "lxc-not-installed": BadInput(("--profile=lab", "-m", "containers", "--samples=1"), 1,
                                  ("LXC is not installed", "apt-get install lxc"), "containers.room", without=("lxc-",),
                                  host_wide=True),
    "dnsmasq-not-installed": BadInput(("--profile=lab", "-m", "network"), 1, ("dnsmasq is not installed", "apt-get install dnsmasq-base"),
                                      "network.bridge_exists", without=("dnsmasq",)),
    # Not root: what needs root says so; the rest runs.
    "non-root-lab": BadInput(("--profile=lab",), 4, ("--profile=lab", "need root", "-m 'kernel or host'"), user="nobody"),
    "non-root-unreadable-home": BadInput(
        ("--profile={dir}/rootuser.yaml",), 1, ("run as root", "/root/.config/lxc/default.conf", "user nobody"), "host.lxc_idmap",
        {"rootuser.yaml": b"extends: workshop\ncategories: [kernel, host]\nhost: {user: root}\n"},
        user="nobody"),
    "non-root-unreadable-kernel-config": BadInput(("--kernel-config={dir}/secret-config",), 4, ("secret-config", "cannot read"),
                                                  files={"secret-config": b"CONFIG_NAMESPACES=y\n"}, user="nobody"),
}


@pytest.fixture
def workdir():
    """A directory every user can read (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="lxcct-bad-input-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_the_table_covers_at_least_25_bad_inputs():
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.unit] if BAD_INPUTS[name].unit else [])
                                  for name in sorted(BAD_INPUTS)])
def test_bad_input_gets_a_clear_answer(name, workdir):
    case = BAD_INPUTS[name]
    if case.user and sys.version_info[:2] != (3, 11):
        pytest.skip("runs the project's packages with Debian 12's /usr/bin/python3 (3.11)")
    for file, data in case.files.items():
        (workdir / file).write_bytes(data)
    if "secret-config" in case.files:
        (workdir / "secret-config").chmod(0o600)
    reports = workdir / "reports"
    reports.mkdir(mode=0o777)
    reports.chmod(0o777)
    env = {"PATH": path_without(case.without, workdir)} if case.without else None
    suite = Suite(reports)
    with HostState() if case.host_wide else contextlib.nullcontext():
        result = suite.run(*(arg.format(dir=workdir) for arg in case.args), env=env, user=case.user, timeout=300)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]
    assert result.returncode == case.code, output[-3000:]
    if case.check is None:
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1, output
        answer = lines[0]
        assert not reports.exists() or not any(reports.iterdir()), "a refused run writes no reports"
    else:
        document = next(iter(reports.glob("*.json")))
        import json

        checks = {c["id"]: c for c in json.loads(document.read_text())["checks"]}
        answer = checks[case.check].get("message", "") + " " + checks[case.check].get("actual", "")
    for word in case.words:
        assert word in answer, answer
