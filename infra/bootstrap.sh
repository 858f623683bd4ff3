#!/usr/bin/env bash
# Installs everything modelgate needs on a fresh Debian machine: system packages, the virtualenv,
# the dashboard's node packages. Idempotent: each step runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

need=()
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need+=(rabbitmq-server)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# promtool (tests check every service's /metrics with `promtool check metrics`); Debian's
# prometheus package ships it as /usr/bin/promtool. Its server is not started by the tests.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  # We want promtool, not a Prometheus server on :9090: the package starts one under systemd.
  if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "bootstrap: installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  # KServe's REST client for the OIP tests: its declared pins (pandas<3, protobuf<7, psutil<6)
  # would downgrade ours, so it and the modules it imports go in as listed, without resolution.
  .venv/bin/pip install -q --no-deps -r tests/kserve-client.txt
  touch .venv/.installed
fi

if [ -f dashboard/package.json ]; then
  node_version=$(node -v 2>/dev/null | sed 's/^v//')
  if [ "$(printf '%s\n' "20.19.0" "$node_version" | sort -V | head -1)" != "20.19.0" ]; then
    echo "bootstrap: the dashboard build (Vite) needs Node.js >= 20.19; found '${node_version:-none}'." >&2
    echo "  Install Node.js 20 LTS (e.g. from NodeSource) and run make again." >&2
    exit 1
  fi
  if [ ! -d dashboard/node_modules ] || [ dashboard/package-lock.json -nt dashboard/node_modules/.installed ]; then
    echo "bootstrap: installing dashboard packages"
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed)
  fi
  sources="dashboard/src dashboard/index.html dashboard/package.json dashboard/package-lock.json"
  sources="$sources $(ls dashboard/vite.config.* dashboard/tsconfig*.json 2>/dev/null | tr '\n' ' ')"
  # shellcheck disable=SC2086
  if [ ! -f management_api/static/index.html ] || [ -n "$(find $sources -newer management_api/static/index.html 2>/dev/null | head -1)" ]; then
    echo "bootstrap: building the dashboard"
    (cd dashboard && npm run build --silent)
  fi
fi
