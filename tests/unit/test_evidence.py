"""A sealed evidence bundle: it verifies as written; one changed byte in any
file fails verification naming that file; a signer the auditor does not allow
fails; the HTML and JSON carry the hash of what the checks read."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT
from configs import SYNTHETIC

# The unit tier (./lxcc test --unit): no root, no container, no network.
pytestmark = pytest.mark.unit

LXCC = str(ROOT / "lxcc")


def _key(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True, timeout=30)
    return key


def _allowed(folder: Path, key: Path) -> Path:
    allowed = folder / f"allowed-{key.name}"
    allowed.write_text(f"auditor@example.org {key.with_suffix('.pub').read_text()}")
    return allowed


def _verify(bundle: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([LXCC, "verify", str(bundle), *extra], capture_output=True, text=True, timeout=120)


def _changed(bundle: Path, name: str, out: Path) -> Path:
    """BUNDLE with one byte of NAME changed, everything else as it was."""
    with tarfile.open(bundle, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == name:
                data = bytes([data[0] ^ 0x01]) + data[1:]
            target.addfile(member, io.BytesIO(data))
    return out


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    """(folder, bundle, key): a kernel run's bundle, signed."""
    folder = tmp_path_factory.mktemp("evidence")
    config = folder / "config-6.1"
    config.write_bytes(SYNTHETIC["6.1"])
    key = _key(folder, "signer")
    done = subprocess.run([sys.executable, "-m", "pytest", "checks",
                           f"--kernel-config={config}", f"--report-dir={folder / 'reports'}",
                           f"--junitxml={folder / 'reports/junit.xml'}", f"--evidence={folder / 'run.tar.gz'}",
                           f"--sign-key={key}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"evidence: {folder / 'run.tar.gz'}" in done.stdout
    return folder, folder / "run.tar.gz", key


def test_a_bundle_verifies_and_holds_what_the_checks_read(sealed):
    folder, bundle, key = sealed
    done = _verify(bundle, "--allowed-signers", str(_allowed(folder, key)))
    assert done.returncode == 0 and "verifies (hashes and signature)" in done.stdout, done.stdout + done.stderr
    with tarfile.open(bundle, "r:gz") as opened:
        names = set(opened.getnames())
        document = json.loads(opened.extractfile("reports/kernel.json").read())
        evidence_manifest = opened.extractfile("EVIDENCE.sha256").read()
        page = opened.extractfile("reports/kernel.html").read().decode()
    assert {"MANIFEST.sha256", "MANIFEST.sha256.sig", "EVIDENCE.sha256", "reports/kernel.json", "reports/kernel.html",
            "reports/junit.xml", "profile/kernel.yaml", "kernel/" + document["host"]["hostname"] + "/config-6.1"} <= names
    assert {f"checks/{c['host']}/{c['id']}.txt" for c in document["checks"]} <= names
    digest = hashlib.sha256(evidence_manifest).hexdigest()
    assert document["evidence"]["evidence_manifest_sha256"] == digest and digest in page
    # sha256sum's own format: the auditor's tools check it without lxcc.
    extracted = folder / "extracted"
    extracted.mkdir()
    with tarfile.open(bundle, "r:gz") as opened:
        # Python 3.11.2 (Debian 12's) has no extraction filters yet; the bundle is the test's own.
        opened.extractall(extracted, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=extracted, timeout=60).returncode == 0


@pytest.mark.parametrize("name", ["reports/kernel.json", "checks/{host}/kernel.veth.txt", "profile/kernel.yaml",
                                  "EVIDENCE.sha256", "MANIFEST.sha256"])
def test_one_changed_byte_fails_naming_the_file(sealed, tmp_path, name):
    folder, bundle, key = sealed
    with tarfile.open(bundle, "r:gz") as opened:
        host = json.loads(opened.extractfile("reports/kernel.json").read())["host"]["hostname"]
    name = name.format(host=host)
    done = _verify(_changed(bundle, name, tmp_path / "changed.tar.gz"), "--allowed-signers", str(_allowed(folder, key)))
    assert done.returncode == 1, done.stdout
    first = done.stdout.splitlines()[0]
    if name == "MANIFEST.sha256":  # its own change shows as files that differ from it, and a broken signature
        assert "does not verify MANIFEST.sha256" in done.stdout
    else:
        assert f"first: {name}: differs" in first, done.stdout


def test_a_signer_the_auditor_does_not_allow_fails(sealed):
    folder, bundle, _ = sealed
    stranger = _key(folder, "stranger")
    done = _verify(bundle, "--allowed-signers", str(_allowed(folder, stranger)))
    assert done.returncode == 1 and "signed by a key" in done.stdout, done.stdout


def test_sign_key_without_evidence_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "checks", f"--report-dir={tmp_path}",
                           "--sign-key=/nonexistent"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4 and "--sign-key signs an evidence bundle" in done.stderr + done.stdout


def test_a_bundle_repacked_with_tar_still_verifies(sealed, tmp_path):
    """An auditor who unpacks a bundle and packs it again with tar -C DIR . gets ./-prefixed
    member names: the same files, so it verifies."""
    folder, bundle, key = sealed
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(unpacked)], check=True, timeout=60)
    repacked = tmp_path / "repacked.tar.gz"
    subprocess.run(["tar", "-czf", str(repacked), "-C", str(unpacked), "."], check=True, timeout=60)
    done = _verify(repacked, "--allowed-signers", str(_allowed(folder, key)))
    assert done.returncode == 0 and "verifies (hashes and signature)" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("args", [("verify", "{dir}/no-such.tar.gz"), ("verify",), ("merge",),
                                  ("merge", "{dir}/no-such.json"), ("verify", "{dir}/x.tar.gz", "--bogus")])
def test_subcommands_say_a_usage_error_with_exit_4(tmp_path, args):
    """One exit code table for every subcommand: 4 is a usage error or unreadable input (2 is an interrupt)."""
    done = subprocess.run([LXCC, *(a.format(dir=tmp_path) for a in args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
