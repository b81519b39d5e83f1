#!/bin/sh
# Installs the Debian/Ubuntu packages Nebula's set-up needs, only when they are missing.
set -e
need=""
python3 -c "import venv, ensurepip" 2>/dev/null || need="$need python3-venv"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
# the PostgreSQL tests start a throwaway server from the installed binaries (initdb, pg_ctl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
# the MySQL CDC tests start a throwaway MariaDB (mariadb-install-db, mariadbd)
command -v mariadb-install-db >/dev/null 2>&1 || need="$need mariadb-server"
if [ -n "$need" ]; then
    if [ "$(id -u)" = "0" ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "missing system packages:$need (install them with apt-get as root)" >&2; exit 1; fi
    echo "installing system packages:$need"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
