"""Which file an ``extends`` names, and whether a policy may extend it.  Apart from the
checker (:mod:`.check`) so that the cache of compiled policies (:mod:`.cache`) can follow
a chain again without importing it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..limits import MAX_POLICY_BYTES


class PolicyResolver:
    """Finds policies named in ``extends``: names on the policy search path, or paths
    (relative to the file that names them)."""

    def __init__(self, find: Callable[[str], Path | None], names: Callable[[], list[str]]) -> None:
        self.find = find
        self.names = names

    def resolve(self, ref: str, quoted: bool, relative_to: str) -> Path | None:
        """The file ``extends ref`` names, or None when there is none.  A path (quoted, or
        ending in ``.pol``) is relative to the file that names it; :meth:`read` says
        whether it is one a policy may extend."""
        if quoted or ref.endswith(".pol"):
            path = Path(ref)
            if not path.is_absolute():
                path = Path(relative_to).parent / path
            return path if path.is_file() else None
        return self.find(ref)

    @staticmethod
    def read(path: Path) -> tuple[str | None, str]:
        """(the text of the policy file at ``path``, "") -- or (None, why not): it must be
        a readable ``.pol`` file (after following links) of UTF-8 text, no larger than
        :data:`~policykit.limits.MAX_POLICY_BYTES`.  The reason never quotes the file."""
        try:
            real = path.resolve()
            if real.suffix != ".pol":
                return None, "extends names a policy: a built-in name or a .pol file"
            if real.stat().st_size > MAX_POLICY_BYTES:
                return None, f"the file is larger than {MAX_POLICY_BYTES:,} bytes"
            return real.read_bytes().decode("utf-8"), ""
        except UnicodeDecodeError:
            return None, "the file is not UTF-8 text"
        except OSError as exc:
            return None, f"the file cannot be read ({exc.strerror or type(exc).__name__})"
