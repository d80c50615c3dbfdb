#!/usr/bin/env python3
"""Ctrl-C and echo as a person sees them: catty and OpenSSH side by side in real tmux panes.

The peers bench (`cargo bench --bench peers`) reads its own PTY as fast as output comes; a
terminal emulator does not, and that once hid a 9x Ctrl-C gap. Here tmux is the terminal:
keys go in with `send-keys`, the screen comes out with `capture-pane`, polled every 1 ms.
Run after `cargo build --release` (and with openssh-server installed):

    python3 benches/tmux_peers.py [TRIALS]    (CATTY_BIN=path to time another build)

Prints one line per figure and contender, and the catty/ssh ratio of the medians.
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

PROMPT = "[tm]$"
CATTY = os.environ.get("CATTY_BIN") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "catty")
SOCKET = "catty-tmux-bench"


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=check, capture_output=True, text=True).stdout


def screen(pane):
    return [l for l in tmux("capture-pane", "-p", "-t", pane).splitlines() if l.strip()]


def wait_for(pane, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = screen(pane)
        if pred(lines):
            return time.monotonic()
        time.sleep(0.001)
    raise SystemExit(f"{pane}: timed out; screen ends {screen(pane)[-3:]}")


def at_prompt(lines):
    return bool(lines) and lines[-1].rstrip() == PROMPT


def ctrl_c(pane):
    tmux("send-keys", "-t", pane, "clear; yes", "Enter")
    wait_for(pane, lambda l: len(l) > 5 and l[-1] == "y")
    time.sleep(0.3)
    start = time.monotonic()
    tmux("send-keys", "-t", pane, "C-c")
    return wait_for(pane, at_prompt) - start


def echo(pane, n):
    tmux("send-keys", "-t", pane, "clear", "Enter")
    wait_for(pane, lambda l: len(l) == 1 and at_prompt(l))
    mark = f"k{n}"
    start = time.monotonic()
    tmux("send-keys", "-t", pane, "-l", mark)
    took = wait_for(pane, lambda l: bool(l) and l[-1].endswith(mark)) - start
    tmux("send-keys", "-t", pane, "C-u")
    return took


def free_port():
    """A loopback port free a moment ago (for sshd and the client's daemon, which bind it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sshd(dir):
    os.makedirs("/run/sshd", exist_ok=True)
    for key in ["host", "user"]:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{dir}/{key}"], check=True)
    shutil.copy(f"{dir}/user.pub", f"{dir}/authorized_keys")
    port = free_port()
    with open(f"{dir}/sshd_config", "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host\nPidFile {dir}/pid\n"
                f"AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin yes\nPasswordAuthentication no\n"
                "UsePAM no\nStrictModes no\nPrintMotd no\nPrintLastLog no\nUseDNS no\n")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{dir}/sshd_config"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    shell = f"PS1='{PROMPT} ' exec bash --norc --noprofile -i"
    argv = (f"ssh -t -F /dev/null -i {dir}/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"-o LogLevel=ERROR -p {port} root@127.0.0.1 \"{shell}\"")
    return proc, argv


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    dir = tempfile.mkdtemp(prefix="tmux-peers-")
    sshd_proc, ssh_argv = sshd(dir)
    api_addr = f"127.0.0.1:{free_port()}"
    env = f"env XDG_STATE_HOME={dir}/state CATTY_API_ADDR={api_addr}"
    # Sessions see none of the caller's variables: the prompt is set in the session.
    session = f"env 'PS1={PROMPT} ' bash --norc --noprofile -i"
    catty_argv = f"cd {dir} && {env} {CATTY} new --no-upload -- {session}"
    tmux("kill-server", check=False)
    tmux("new-session", "-d", "-s", "ssh", "-x", "120", "-y", "40", ssh_argv)
    tmux("new-session", "-d", "-s", "catty", "-x", "120", "-y", "40", catty_argv)
    panes = {"catty": "catty", "ssh": "ssh"}
    for pane in panes.values():
        wait_for(pane, at_prompt, timeout=30)
    results = {name: {"ctrl-c": [], "echo": []} for name in panes}
    try:
        for n in range(trials):
            order = list(panes) if n % 2 == 0 else list(reversed(list(panes)))
            for name in order:
                results[name]["ctrl-c"].append(ctrl_c(panes[name]))
                results[name]["echo"].append(echo(panes[name], n))
    finally:
        tmux("kill-server", check=False)
        sshd_proc.kill()
        subprocess.run(["pkill", "-f", f"catty api --addr {api_addr}"])
        # Sessions outlive their daemon: end the one this run made (its workspace is here).
        subprocess.run(["pkill", "-f", f"{dir}/state/catty/sessions"])
    for figure in ["ctrl-c", "echo"]:
        medians = {}
        for name in panes:
            xs = sorted(x * 1000 for x in results[name][figure])
            medians[name] = statistics.median(xs)
            p90 = xs[int(0.9 * (len(xs) - 1))]
            print(f"{figure:7} {name:6} p50 {medians[name]:6.1f} ms  p90 {p90:6.1f} ms  max {xs[-1]:6.1f} ms  ({len(xs)} trials)")
        print(f"{figure:7} catty/ssh p50 {medians['catty'] / medians['ssh']:.2f}")


main()
