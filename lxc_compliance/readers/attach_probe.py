"""What the probes run inside a container share: enter it with liblxc's attach,
run one function there, and print the JSON object it returns.

Imported by the probe scripts (denial_probe.py, guest_api_probe.py), which Debian's
own Python runs with -I; never by the suite. Stdlib and python3-lxc only."""

import json
import os


def print_from_inside(lxcpath: str, name: str, probe) -> int:
    """Run PROBE() inside NAME (in LXCPATH) and print what it returns as one JSON object
    (an object with "error" where it could not run); the exit status (0: it answered)."""
    import lxc  # python3-lxc

    container = lxc.Container(name, lxcpath)
    if not container.running:
        print(json.dumps({"error": f"{name} is not running"}))
        return 3
    read_end, write_end = os.pipe()

    def inside(_):
        os.close(read_end)
        try:
            answer = probe()
        except Exception as exc:  # said, not raised: the parent reports it
            answer = {"error": f"the probe failed inside {name}: {exc}"}
        os.write(write_end, json.dumps(answer).encode())
        return 0

    status = container.attach_wait(inside, None)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    print(text or json.dumps({"error": f"lxc-attach to {name} failed (status {status})"}))
    return 0 if text else 3
