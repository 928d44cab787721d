"""A recording SMTP server (aiosmtpd) for fault tests, run as a process of its own.

``python -m tests.runtime.delivery.smtp_sink --port P --log FILE [--delay S] [--smtputf8]``

Every message is appended to ``FILE`` as one JSON line (Message-ID, envelope
recipients, the To header) the moment its DATA has arrived, before the server
waits ``--delay`` seconds and answers 250: a sender killed during that wait has
left a message the server got but never acknowledged, as with a real provider.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from email import message_from_string, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, log: Path, delay: float) -> None:
        self.log = log.open("a", encoding="utf-8")
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        # An SMTPUTF8 message's headers are UTF-8 (RFC 6532).
        mail = message_from_string(raw.decode("utf-8", "replace"), policy=policy.default)
        line = json.dumps(
            {
                "message_id": str(mail["Message-ID"]),
                "rcpt": list(envelope.rcpt_tos),
                "to": str(mail["To"]),
                "smtputf8": "SMTPUTF8" in [o.upper() for o in envelope.mail_options],
                "at": time.time(),
            },
            ensure_ascii=False,
        )
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every message the sink received, in order."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--smtputf8", action="store_true")
    args = parser.parse_args()
    controller = Controller(
        Recorder(args.log, args.delay),
        hostname="127.0.0.1",
        port=args.port,
        enable_SMTPUTF8=args.smtputf8,
        decode_data=False,
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
