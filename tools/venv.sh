# Sourced by the quick-start scripts: make (or reuse) the project's own virtual environment,
# install dataver into it with the extras given, and put it first on PATH. The system's Python is
# never installed into, so this works where pip refuses to (PEP 668, "externally-managed-
# environment": Debian 12, Ubuntu 24.04, Homebrew). Usage: source tools/venv.sh EXTRAS
# Set DATAVER_VENV to use another folder, PYTHON to choose the interpreter that makes it.
dataver_extras=${1:?which extras, e.g. example or test,example}
dataver_project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dataver_venv=${DATAVER_VENV:-$dataver_project/.venv}
dataver_python=${PYTHON:-python3}

# A venv counts once it has pip: one left without (a failed bootstrap) is made again.
if ! "$dataver_venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "making a virtual environment for dataver in $dataver_venv (from $("$dataver_python" -c 'import sys; print(sys.executable)'))" >&2
    rm -rf "$dataver_venv"
    if ! "$dataver_python" -m venv "$dataver_venv" 2>/dev/null; then
        # No ensurepip (Debian without python3-venv): a venv without pip, then pip from PyPI.
        rm -rf "$dataver_venv"
        "$dataver_python" -m venv --without-pip "$dataver_venv"
        "$dataver_venv/bin/python" "$dataver_project/tools/bootstrap_pip.py"
    fi
fi

# Install only when the project's requirements or the extras changed since the last install.
dataver_stamp="$dataver_venv/.dataver-installed"
dataver_want="$dataver_extras $(cksum < "$dataver_project/pyproject.toml") $dataver_project"
if [ "$(cat "$dataver_stamp" 2>/dev/null)" != "$dataver_want" ]; then
    echo "installing dataver and the packages for [$dataver_extras] into $dataver_venv (about a minute the first time)" >&2
    "$dataver_venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$dataver_project[$dataver_extras]"
    echo "$dataver_want" > "$dataver_stamp"
fi
export PATH="$dataver_venv/bin:$PATH"
export VIRTUAL_ENV="$dataver_venv"
