"""What a running LXD or Incus instance really offers on its guest API socket: a probe run inside it.

Run by Debian's own Python (``/usr/bin/python3``, which python3-lxc is built
for), never imported by the suite: ``python3 guest_api_probe.py LXCPATH NAME
SOCKET``. It enters the instance with liblxc's attach (an LXD or Incus container
is a liblxc container in the server's ``containers`` folder), looks at SOCKET
(``/dev/lxd/sock``, ``/dev/incus/sock``) as a process inside sees it, asks it
``GET /1.0`` as any process inside could, and prints one JSON object: present,
mode, and the answer's status and API version. Nothing is written into the
instance. Stdlib and python3-lxc only."""

import json
import os
import socket
import stat
import sys

TIMEOUT_S = 3


def probe_socket(path: str) -> dict:
    try:
        info = os.lstat(path)
    except OSError as exc:
        return {"present": False, "error": exc.strerror}
    found = {"present": stat.S_ISSOCK(info.st_mode), "mode": f"{stat.S_IMODE(info.st_mode):04o}", "uid": info.st_uid}
    if not found["present"]:
        return {**found, "error": "not a socket"}
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(TIMEOUT_S)
    try:
        client.connect(path)
        client.sendall(b"GET /1.0 HTTP/1.0\r\nHost: guest\r\n\r\n")
        answer = b""
        while len(answer) < 65536:
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    except OSError as exc:
        return {**found, "answers": False, "error": exc.strerror or str(exc)}
    finally:
        client.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    found.update(answers=status.startswith("HTTP/") and " 200" in status, status=status)
    try:
        found["api_version"] = json.loads(body).get("api_version", "")
    except (ValueError, AttributeError):
        pass
    return found


def main(lxcpath: str, name: str, path: str) -> int:
    # Appended, not first: this folder's lxc.py must not shadow python3-lxc's 'lxc'.
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    from attach_probe import print_from_inside

    return print_from_inside(lxcpath, name, lambda: probe_socket(path))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
