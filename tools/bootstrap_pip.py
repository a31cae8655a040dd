"""Install pip into a virtual environment made without it (its Python has no ensurepip, as on
Debian without python3-venv): fetch pip's newest wheel from PyPI and run pip from that wheel.
Standard library only: nothing else is installed yet."""

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/pypi/pip/json"


def main() -> None:
    with urllib.request.urlopen(INDEX, timeout=60) as answer:
        release = json.load(answer)
    wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / wheel["filename"]
        url = urllib.parse.urljoin(INDEX, wheel["url"])  # a mirror may give it relative to the index
        with urllib.request.urlopen(url, timeout=300) as answer:
            path.write_bytes(answer.read())
        # A wheel is a zip that Python can run: pip installs itself from its own wheel.
        subprocess.run([sys.executable, f"{path}/pip", "install", "--quiet", str(path)], check=True)


if __name__ == "__main__":
    main()
