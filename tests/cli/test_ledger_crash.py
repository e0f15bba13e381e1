"""Kill a writer in the middle of ledger writes: the ledger must still verify."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.ledger import verify_chain

WRITER = """
import sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from relpromote.adapters.sqlite_ledger import SqliteLedger
from relpromote.identity import Identity, public_key_line
key = Ed25519PrivateKey.generate()
identity = Identity(key, public_key_line(key.public_key()))
ledger = SqliteLedger(Path(sys.argv[1]))
print("ready", flush=True)
n = 0
while True:
    ledger.append("release.built", "writer", identity, {"n": n, "padding": "x" * 4096})
    n += 1
"""


def test_sigkill_mid_write_leaves_a_verifiable_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    rng = random.Random(7)
    counts = []
    for _ in range(6):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        ledger = SqliteLedger(path)
        entries = ledger.entries()
        ledger.close()
        report = verify_chain(entries)
        assert report.ok, report
        counts.append(report.entries)
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0
