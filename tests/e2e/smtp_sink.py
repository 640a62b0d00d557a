"""An independent SMTP sink (not Herald): aiosmtpd in its own process, one line per accepted message.

Usage: python smtp_sink.py PORT OUT_FILE. Each accepted message appends `<Message-ID>\t<client port>\n` to
OUT_FILE and flushes it before the 250 is answered, so the file is never behind what the client was told.
A transaction cut before its final dot is dropped by aiosmtpd (handle_DATA never runs). Prints `ready`.
"""

from __future__ import annotations

import sys
import threading
from email.parser import BytesHeaderParser
from typing import IO, Any

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        message_id = (BytesHeaderParser().parsebytes(content).get("Message-ID") or "").strip()
        with self.lock:
            self.out.write(f"{message_id}\t{session.peer[1]}\n")
            self.out.flush()
        return "250 2.0.0 OK"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    with open(path, "a", buffering=1, encoding="utf-8") as out:
        controller = Controller(Sink(out), hostname="127.0.0.1", port=port, ready_timeout=10)
        controller.start()
        print("ready", flush=True)
        try:
            sys.stdin.read()  # until the test closes our stdin (or dies)
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
