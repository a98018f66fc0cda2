#!/usr/bin/env bash
# Create or update bench/.venv-peers, the Python 3.12 virtualenv that runs the
# peer systems. oban (the Python port) requires Python >= 3.12, and the peers
# stay out of gendurable's own venv so their dependencies cannot change it.
# Safe to rerun: an existing venv is reused and pip skips satisfied pins.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$bench_dir/.venv-peers"
python="${PEERS_PYTHON:-$HOME/.pyenv/versions/3.12.1/bin/python}"

if [[ ! -x "$python" ]]; then
    echo "Python 3.12 not found at $python; set PEERS_PYTHON to a Python >= 3.12 interpreter." >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$bench_dir/requirements-peers.txt"
"$venv/bin/python" -m pip list --disable-pip-version-check --format=freeze \
    | grep -iE '^(procrastinate|pgqueuer|oban|celery|redis|psycopg|asyncpg)(==|\[)' || true
