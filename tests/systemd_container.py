"""A real systemd 252 booted as PID 1 of a container, with streamconv installed as an operator
would, for the tests of the shipped unit (``tests/test_systemd.py``).

The container runs over a copy-on-write view of this machine's own root filesystem (an overlay
whose upper layer is a tmpfs), so nothing on the host changes: ``systemd-nspawn`` boots the
machine's own systemd in it, in a cgroup of its own and with pure cgroup v2, as on a Debian 12
server. Before the boot, the commands of ``systemd/README.md``'s install section run inside
(with the host's network, for pip); after it, the README's start section. The booted container
has its own loopback (``--private-network``) and may load BPF programs, so ``IPAddressDeny=``
and ``DevicePolicy=`` are enforced, not silently ignored. ALSA's null device is the default
sound device inside.

Fixture ``systemd_container`` (session-scoped) yields a `Container`; it skips, printing why, on
a machine that cannot boot one (not root, ``systemd-container`` not installable, no overlayfs).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "systemd" / "README.md"
CHECKOUT = Path("/usr/local/src/streamconv")  # where the container's checkout lies
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The default ALSA device inside: playback into ALSA's null plugin, capture from the null
# plugin too, through the file plugin reading /dev/zero (the null plugin alone hands capture
# whatever its buffer holds, NaNs included). Both run in real time, paced by the null plugin.
ASOUND_CONF = """\
pcm.!default { type asym; playback.pcm "nullout"; capture.pcm "zeroin" }
pcm.nullout { type plug; slave.pcm { type null } }
pcm.zeroin {
  type plug
  slave.pcm {
    type file; slave.pcm { type null }; file "/dev/null"; infile "/dev/zero"; format "raw"
  }
}
"""
CGROUP_HIERARCHIES = ("unified", "systemd")


def readme_commands(section: str) -> list[str]:
    """The shell commands of the ``sh`` code block under the README heading ``section``
    (comments dropped, ``sudo`` removed: the tests run as root)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{README}: no section '## {section}'"
    blocks = re.findall(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)
    assert blocks, f"{README}: no sh block under '## {section}'"
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(re.sub(r"^sudo ", "", line))
    return commands


def unavailable() -> str | None:
    """Why this machine cannot boot the container, or None (installs systemd-container)."""
    if os.geteuid() != 0:
        return "not root: booting systemd in a container needs root"
    if not shutil.which("systemd-nspawn"):
        cmd = "apt-get install -y -qq systemd-container"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run = subprocess.run(cmd.split(), capture_output=True, env=env, check=False)
        if run.returncode:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            run = subprocess.run(cmd.split(), capture_output=True, env=env, check=False)
        if not shutil.which("systemd-nspawn"):
            return f"systemd-container is not installable: {run.stderr.decode()[-300:]}"
    if (
        not Path("/sys/fs/cgroup/unified").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.procs").exists()
    ):
        return "no cgroup v2 hierarchy to give the container"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    return None


class Container:
    """A booted container; `run` executes a shell command inside it as root."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="streamconv-systemd-"))
        self.machine = f"scv{os.getpid()}"
        self.root = self.tmp / "root"
        self.nspawn: subprocess.Popen | None = None
        self.leader: int | None = None
        self.timings: dict[str, float] = {}
        self._mounted: list[Path] = []

    # -- setting up ------------------------------------------------------------------------

    def prepare(self) -> None:
        ovl = self.tmp / "ovl"
        ovl.mkdir()
        self.root.mkdir()
        _sh(f"mount -t tmpfs -o size=4G tmpfs {ovl}")
        self._mounted.insert(0, ovl)
        (ovl / "upper").mkdir()
        (ovl / "work").mkdir()
        _sh(
            f"mount -t overlay overlay -o lowerdir=/,upperdir={ovl}/upper,workdir={ovl}/work "
            f"{self.root}"
        )
        self._mounted.insert(0, self.root)
        etc = self.root / "etc"
        # The host's enabled units (getty, timers, databases, brokers other tests installed)
        # have no business in the container: only what systemd itself ships stays.
        for wants in (etc / "systemd" / "system").glob("*.wants"):
            for link in wants.iterdir():
                link.unlink()
        (etc / "machine-id").write_text("")
        # The operator's checkout, copied in: nspawn mounts a fresh /tmp, and CI may clone
        # the repository anywhere, so the host's path may not be there inside.
        shutil.copytree(
            REPO,
            self.root / CHECKOUT.relative_to("/"),
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "__pycache__", "*.egg-info", "build", "*.so", ".*_cache"
            ),
        )
        (etc / "asound.conf").write_text(ASOUND_CONF)
        # A container left over from a crashed run must not keep the name's cgroup.
        for h in CGROUP_HIERARCHIES:
            _rmdir_tree(Path("/sys/fs/cgroup") / h / self.machine)

    def _nspawn(self, args: str) -> str:
        cgroups = "; ".join(
            f"mkdir -p /sys/fs/cgroup/{h}/{self.machine}; "
            f"echo $$ > /sys/fs/cgroup/{h}/{self.machine}/cgroup.procs"
            for h in CGROUP_HIERARCHIES
            if Path("/sys/fs/cgroup", h).is_dir()
        )
        return (
            f"{cgroups}; SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec systemd-nspawn -q "
            f"-D {self.root} -M {self.machine} --register=no --keep-unit {args}"
        )

    def install(self, commands: list[str]) -> None:
        """Run `commands` (a shell script's lines) in the not yet booted container, with the
        host's network (pip), from the checkout's directory."""
        script = "set -ex\ncd " + shlex.quote(str(CHECKOUT)) + "\n" + "\n".join(commands)
        t0 = time.monotonic()
        run = subprocess.run(
            ["sh", "-c", self._nspawn("--pipe /bin/sh -c " + shlex.quote(script))],
            capture_output=True,
            timeout=600,
            check=False,
        )
        self.timings["install_s"] = time.monotonic() - t0
        self.install_log = run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace")
        if run.returncode:
            raise AssertionError(
                f"install failed ({run.returncode}):\n{run.stdout.decode()}\n{run.stderr.decode()}"
            )

    def boot(self, timeout: float = 60) -> None:
        t0 = time.monotonic()
        self._console = open(self.tmp / "console.log", "wb")
        self.nspawn = subprocess.Popen(
            [
                "sh",
                "-c",
                self._nspawn(
                    "--private-network --capability=CAP_BPF --system-call-filter=bpf "
                    "--boot --console=read-only"
                ),
            ],
            stdout=self._console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        state = ""
        while state not in ("running", "degraded"):
            assert self.nspawn.poll() is None, f"nspawn exited: {self.console()}"
            assert time.monotonic() < deadline, f"boot: {state}\n{self.console()}"
            time.sleep(0.1)
            # nspawn's first child is a short-lived intermediate: the container's PID 1 is the
            # child nspawn has once the boot is under way, so it is looked up until it answers.
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            with contextlib.suppress(OSError, ValueError):
                self.leader = int(children.read_text().split()[0])
            if self.leader is None:
                continue
            probe = self.run("systemctl is-system-running", check=False)
            state = probe.stdout.strip() or probe.stderr.strip()
        self.timings["boot_s"] = time.monotonic() - t0

    def console(self) -> str:
        return (self.tmp / "console.log").read_text(errors="replace")[-4000:]

    # -- using -----------------------------------------------------------------------------

    def run(
        self, command: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``sh -c command`` inside as root; stdout and stderr as text."""
        run = subprocess.run(
            [
                "nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r",
                "-w", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", "HOME=/root",
                "sh", "-c", command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )  # fmt: skip
        if check and run.returncode:
            journal = ""
            if "systemctl" in command:  # what the unit said is the explanation
                journal = self.run("journalctl -n 15 -o cat --no-pager", check=False).stdout
            raise AssertionError(
                f"`{command}` exited {run.returncode}:\n{run.stdout}\n{run.stderr}\n{journal}"
            )
        return run

    def write(self, path: str, text: str) -> None:
        """Write a file inside the container."""
        self.run(f"cat > {shlex.quote(path)}", input=text)

    # -- tearing down ----------------------------------------------------------------------

    def close(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self.leader is not None:
                self.run("systemctl poweroff", check=False, timeout=10)
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait()
        if getattr(self, "_console", None):
            self._console.close()
        for path in self._mounted:
            if subprocess.run(["umount", str(path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        for h in CGROUP_HIERARCHIES:
            _rmdir_tree(Path("/sys/fs/cgroup") / h / self.machine)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True, capture_output=True)


def _rmdir_tree(path: Path) -> None:
    """Remove an empty cgroup and its empty children, deepest first."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


@pytest.fixture(scope="session")
def systemd_container():
    """A booted container with streamconv installed and started as ``systemd/README.md``
    says; skipped, with the reason, where the machine cannot boot one."""
    reason = unavailable()
    if reason:
        print(f"\nsystemd tests skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    box = Container()
    try:
        box.prepare()
        box.install(readme_commands("Install"))
        box.boot()
        t0 = time.monotonic()
        for command in readme_commands("Start"):
            box.run(command)
        box.timings["start_s"] = time.monotonic() - t0
        print(f"\nsystemd container: {box.timings}", file=sys.stderr)
        yield box
    finally:
        box.close()
