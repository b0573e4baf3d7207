"""DEMO ONLY: play the human who reviews and signs the policy, so the one-command demo needs
no input. A real deployment never does this: a person runs `airlock approver init` and
`airlock policy sign` at their own terminal, with a passphrase only they know.

Usage: demo_human.py AIRLOCK_BINARY DEMO_DIR POLICY

Creates a throwaway approver key (DEMO_DIR/demo-human.key) under a random passphrase that is
never written anywhere, trusts it in DEMO_DIR/approvers.toml, and signs POLICY with it. airlock
reads those prompts from its controlling terminal (/dev/tty), never stdin, so this script
answers them through a pseudo-terminal (Python's stdlib `pty`), as a person's terminal would.
"""

import os
import pty
import re
import secrets
import sys


def run_at_terminal(argv, answers):
    """Run argv with a pty as its controlling terminal; answer each (regex, reply) prompt in
    order. Returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    seen = b""
    pending = list(answers)
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        while pending:
            pattern, reply = pending[0]
            m = re.search(pattern, seen.decode(errors="replace"))
            if not m:
                break
            os.write(fd, (reply(m) if callable(reply) else reply).encode() + b"\n")
            pending.pop(0)
            seen += b"\n"
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, demo_dir, policy = sys.argv[1:]
    key = os.path.join(demo_dir, "demo-human.key")
    trust = os.path.join(demo_dir, "approvers.toml")
    for stale in (key, trust):
        if os.path.exists(stale):
            os.remove(stale)
    passphrase = secrets.token_urlsafe(24)
    code, out = run_at_terminal(
        [binary, "approver", "init", "--name", "demo-human", "--key", key],
        [(r"Passphrase \(at least", passphrase), (r"Passphrase again", passphrase)],
    )
    if code != 0:
        sys.exit(f"demo_human: approver init failed:\n{out}")
    public = next(l.strip() for l in out.splitlines() if l.startswith("public_key = "))
    with open(trust, "w") as f:
        f.write("# DEMO ONLY: a throwaway approver created by scripts/demo_human.py\n")
        f.write(f'[[approver]]\nname = "demo-human"\n{public}\n')
    os.environ["AIRLOCK_TRUST"] = trust
    code, out = run_at_terminal(
        [binary, "policy", "sign", "--policy", policy, "--key", key],
        [
            (r"manifest hash \(([0-9a-f]{8})\) to sign", lambda m: m.group(1)),
            (r"Passphrase for", passphrase),
        ],
    )
    # What the human was shown, then the result.
    # (A throwaway passphrase, but never shown even so.)
    print(out.replace(passphrase, "********").replace("\r\n", "\n").rstrip())
    if code != 0:
        sys.exit(f"demo_human: policy sign failed (exit {code})")


if __name__ == "__main__":
    main()
