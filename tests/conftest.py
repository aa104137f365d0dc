"""Make the collection importable as ``ansible_collections.gpu_slicing.eks``.

Ansible loads collection code by its fully qualified package name, so tests import it the
same way. ``.build/collections/ansible_collections/gpu_slicing/eks`` is a symlink to the
repository root; putting ``.build/collections`` first on ``sys.path`` makes every
``from ansible_collections.gpu_slicing.eks...`` import resolve to this checkout.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")
_LINK = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "gpu_slicing", "eks")

if not os.path.islink(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(os.path.relpath(REPO_ROOT, os.path.dirname(_LINK)), _LINK)

if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)
