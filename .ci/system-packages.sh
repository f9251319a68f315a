#!/usr/bin/env bash
# Debian packages headwater's tests and demo need: Java for Spark, ODBC drivers, PostgreSQL, Node.
set -euo pipefail
need=(default-jre-headless unixodbc unixodbc-dev libsqliteodbc odbc-postgresql postgresql nodejs npm)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A newer Java or Node from elsewhere on PATH is fine too.
if command -v java >/dev/null; then missing=("${missing[@]/default-jre-headless}"); fi
if command -v node >/dev/null && command -v npm >/dev/null; then missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}"); fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
