#!/usr/bin/env bash
# Prepare this checkout: a virtual environment with relpromote and its tools, and (with --system)
# the system services the test suite starts itself: sshd for real test hosts, PostgreSQL, nginx; and Chromium (headless).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
  missing=()
  [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v git >/dev/null || missing+=(git)
  command -v chromium >/dev/null || missing+=(chromium)  # the status page is tested in a real headless browser
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)  # a real artifact server on loopback for the tests of pulled artifacts
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      echo "bootstrap: missing system packages ${missing[*]}; install them as root (apt-get install -y ${missing[*]})" >&2
      exit 2
    fi
    echo "bootstrap: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
    # The Debian package starts a default cluster and sshd on port 22; the tests run their own.
    if command -v service >/dev/null; then service postgresql stop >/dev/null 2>&1 || true; service nginx stop >/dev/null 2>&1 || true; fi
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: relpromote needs Python >= 3.11 (set PYTHON=...)" >&2
  exit 2
fi
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch .venv/.installed
fi
