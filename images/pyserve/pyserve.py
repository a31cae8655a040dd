"""Serve iris predictions over HTTP: `pyserve.py MODELDIR PORT`.

Loads MODELDIR/model.pkl once, then answers POST /predict (a CSV body: rows of four
measurements, no header) with one predicted label per line, parsed and predicted exactly as
images/pyinfer/pyinfer.py does for a file. A row that is not four numbers gets 400 and one line
naming it. GET / answers 200 once the model is loaded (dataver's health check).
"""

import io
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import joblib
import pandas as pd

FEATURES = ["sepal_len", "sepal_wid", "petal_len", "petal_wid"]


def bad_row(text: str) -> str:
    """The first row that is not four numbers, said in one line, or ''."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != len(FEATURES):
            return f"row {number}: {len(cells)} fields where {len(FEATURES)} numbers were expected"
        for cell in cells:
            try:
                float(cell)
            except ValueError:
                return f"row {number}: {cell.strip()[:40]!r} is not a number"
    return ""


def predict(model, text: str) -> str:
    """One label per row, as pyinfer writes them."""
    rows = pd.read_csv(io.StringIO(text), names=FEATURES)
    return "".join(f"{label}\n" for label in model.predict(rows))


def handler(model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection for many predictions
        disable_nagle_algorithm = True  # headers and body go out as they are written, not 40 ms later

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/":
                self._answer(200, "ready\n")
            else:
                self._answer(404, "not found: POST /predict with CSV rows\n")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            text = self.rfile.read(length).decode(errors="replace")
            if self.path != "/predict":
                self._answer(404, "not found: POST /predict with CSV rows\n")
            elif not text.strip():
                self._answer(400, "empty body: send CSV rows of four measurements\n")
            elif problem := bad_row(text):
                self._answer(400, problem + "\n")
            else:
                self._answer(200, predict(model, text))

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would fill the log

    return Handler


def main(modeldir: str, port: str) -> None:
    model = joblib.load(Path(modeldir) / "model.pkl")
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler(model))
    server.daemon_threads = True
    print(f"serving {Path(modeldir) / 'model.pkl'} on port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
