"""First-run initialisation Loon's code assumes but never does: run by loon-server after the
migrations, at every start (so also after a restore), and idempotent.

* ``aa_index.json`` in the default storage (MinIO bucket or media directory): Loon's
  experiment-name check reads it and only a finished experiment writes it, so on a fresh
  deployment every name check failed with FileNotFoundError. Created as
  ``{"experiments": []}`` when absent; an existing one is never touched.
"""

from __future__ import annotations

import django

INDEX = "aa_index.json"
EMPTY_INDEX = b'{"experiments": []}'


def main() -> None:
    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    if default_storage.exists(INDEX):
        return
    saved = default_storage.save(INDEX, ContentFile(EMPTY_INDEX))
    print(f"first run: created {saved} as {EMPTY_INDEX.decode()} in the default storage "
          "(Loon's experiment-name check reads it; a finished experiment rewrites it)",
          flush=True)


if __name__ == "__main__":
    main()
