"""Make the console's screenshots in docs/ (`python tools/console_screenshots.py`): the iris example
run in a throwaway store (with a pipeline that fails, to show a failed datum), the console served
over it, each main page captured in headless chromium (selenium and chromium-driver, as the tests)."""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests")]

from helpers import iris_store  # noqa: E402

from dataver import Client  # noqa: E402
from dataver.console.server import Binding, ConsoleServer  # noqa: E402

BROKEN = {
    "pipeline": {"name": "report"},
    "transform": {"cmd": ["sh", "-c", "echo summarising $(ls /pfs/inference); echo 'no column species' >&2; exit 1"]},
    "input": {"pfs": {"repo": "inference", "glob": "/*"}},
    "datum_tries": 1,
}


def store(root: Path) -> dict[str, str]:
    """The iris example and a failing report; the pages to capture, by screenshot name."""
    iris_store(root)
    with Client(root) as client:
        client.create_pipeline(BROKEN)
        job = client.last_job("inference")
        assert job is not None
        datum = client.list_datums(job.id)[0]
    return {
        "console-dag": "/",
        "console-pipeline": "/pipeline?name=model",
        "console-job": f"/job?id={job.id}",
        "console-datum-log": f"/datum?job={job.id}&datum={datum.id}",
        "console-file": "/files?repo=training&commit=master&path=/iris.csv",
        "console-provenance": "/provenance?repo=inference&commit=master&path=/2",
    }


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    work = Path(tempfile.mkdtemp(prefix="console-shots-"))
    try:
        pages = store(work / "store")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ConsoleServer(work / "store", Binding("127.0.0.1", port), None)
        server.start()
        options = Options()
        options.binary_location = shutil.which("chromium") or "chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800", "--hide-scrollbars"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
        try:
            for name, path in pages.items():
                driver.get(f"http://127.0.0.1:{port}{path}")
                driver.save_screenshot(str(PROJECT / "docs" / f"{name}.png"))
                print(f"docs/{name}.png")
        finally:
            driver.quit()
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
