"""The installed distributions' entry points of one group, read straight from their
``*.dist-info`` (or ``*.egg-info``) directories on ``sys.path``.

This is what :func:`importlib.metadata.entry_points` does for a plain install, without
importing it (and the ``email`` package it parses metadata with): a fifth of the start-up
of ``policykit check``.  Distributions are taken in ``sys.path`` order, the first of each
name only, as importlib.metadata takes them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str              # "module:attr" (an extra in brackets is dropped)
    dist: str               # the distribution's name, as its metadata spells it
    version: str

    def load(self) -> object:
        import importlib

        module, _, attr = self.value.partition(":")
        obj: object = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
        return obj


def entry_points(group: str) -> list[EntryPoint]:
    out: list[EntryPoint] = []
    seen: set[str] = set()
    for entry in sys.path:
        directory = entry or "."
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for meta in names:
            if not meta.endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(directory, meta)
            dist, version = _name_version(path, meta)
            key = re.sub(r"[-_.]+", "-", dist).lower()
            if key in seen:
                continue
            seen.add(key)
            out.extend(EntryPoint(n, v, dist, version) for n, v in _section(os.path.join(path, "entry_points.txt"), group))
    return out


def _name_version(path: str, meta: str) -> tuple[str, str]:
    """Name and version from the metadata's first headers (the directory's name, else)."""
    stem = meta.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, filename), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break                       # the headers end at the first blank line
                    key, _, value = line.partition(":")
                    if key == "Name":
                        name = value.strip()
                    elif key == "Version":
                        version = value.strip()
            break
        except OSError:
            continue
    return name, version.split("-")[0] if meta.endswith(".dist-info") else version


def _section(path: str, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of ``[group]`` in an entry_points.txt."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    out, inside = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), re.sub(r"\s*\[.*\]\s*$", "", value.strip())))
    return out
