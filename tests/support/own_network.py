"""A network namespace of the test's own, holding only `lo`: an address added to it there may play a public
one, and nothing sent to it can leave the machine.

`unshare --user --map-root-user --net` needs no privilege where the kernel allows unprivileged user
namespaces (most Linux distributions do).
"""

import shlex
import subprocess

PUBLIC_STAND_IN = "1.2.3.4"
"""A global unicast address (the policy's 'public'), reachable only on `lo` inside the namespace."""


def available() -> bool:
    """Whether this machine lets an unprivileged process make a network namespace of its own (and has `ip`)."""
    try:
        probe = subprocess.run(in_own_network(["true"], ()), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def in_own_network(command: list[str], addresses: tuple[str, ...] = (PUBLIC_STAND_IN,)) -> list[str]:
    """`command`, run in a new network namespace whose `lo` is up and also holds `addresses`."""
    setup = ["ip link set lo up", *(f"ip addr add {address}/32 dev lo" for address in addresses)]
    script = " && ".join([*setup, f"exec {shlex.join(command)}"])
    return ["unshare", "--user", "--map-root-user", "--net", "sh", "-c", script]
