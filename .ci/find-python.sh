#!/usr/bin/env bash
# Print the path of a working Python interpreter of the given minor version (e.g. 3.10).
# pyenv's shims answer `command -v` even when that version is not selected, so each
# candidate is run once before it is trusted.
set -u
want="$1"
for candidate in "$(command -v "python$want" 2>/dev/null)" \
                 $(ls -d /root/.pyenv/versions/"$want".*/bin/python 2>/dev/null | sort -V -r) \
                 $(ls -d "$HOME"/.pyenv/versions/"$want".*/bin/python 2>/dev/null | sort -V -r) \
                 /usr/bin/"python$want" /usr/local/bin/"python$want"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  if "$candidate" -c "import sys, venv; assert sys.version.startswith('$want')" >/dev/null 2>&1; then
    echo "$candidate"
    exit 0
  fi
done
echo "no working Python $want found (the platform-floor run needs one)" >&2
exit 1
