#!/usr/bin/env bash
# Installs what `tracklog bench --peers clickhouse,postgres` needs: Debian's
# ClickHouse and PostgreSQL servers. Only missing packages are installed; the
# bench itself starts and stops the servers, on loopback, with their own data
# directories, so the packages' system services are not used.
set -euo pipefail

missing=()
command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
if ! command -v postgres >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "bench peers already installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing: ${missing[*]}"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
