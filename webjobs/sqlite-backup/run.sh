#!/bin/sh
# The sqlite-backup WebJob on Linux. Starts run.js, the launcher, with any Node it finds (the
# PATH's first); the launcher picks the Node for the backup. The job runs in place (settings.job).
here=$(cd "$(dirname "$0")" && pwd)
node=""
if [ -n "${SQLITE_BACKUP_NODE:-}" ] && [ -x "$SQLITE_BACKUP_NODE" ]; then node="$SQLITE_BACKUP_NODE"; fi
if [ -z "$node" ]; then node=$(command -v node 2>/dev/null || true); fi
if [ -z "$node" ]; then
  for candidate in /opt/nodejs/*/bin/node; do
    if [ -x "$candidate" ]; then node="$candidate"; fi
  done
fi
if [ -z "$node" ]; then
  echo "The sqlite-backup job found no node on the PATH or under /opt/nodejs. Add the app setting SQLITE_BACKUP_NODE with the full path of a Node 22.13 or later (or a 64-bit Node 22 or later)."
  exit 1
fi
exec "$node" "$here/run.js" "$@"
