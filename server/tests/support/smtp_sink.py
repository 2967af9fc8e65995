"""A loopback SMTP server for ecr-portal's notification tests (PyPI aiosmtpd).

Every message it accepts is written to DIR as NNNNN.json: {"from", "to", "data"}.
Usage: python smtp_sink.py DIR   (prints "SMTP=127.0.0.1:PORT" once listening)
"""
import json
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
lock = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            n = len(os.listdir(out))
            path = os.path.join(out, f"{n:05}.json")
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "from": envelope.mail_from,
                        "to": envelope.rcpt_tos,
                        "data": envelope.content.decode("utf-8", "replace"),
                    },
                    f,
                )
            os.replace(path + ".tmp", path)
        return "250 OK"


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print(f"SMTP=127.0.0.1:{port}", flush=True)
threading.Event().wait()
