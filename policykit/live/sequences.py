"""Random operation sequences that the live kernel and the simulator can both run: the
material for ``policykit validate --random N``.

Each sequence starts with one process and grows from there: mappings of base pages, a
THP or two 64 KiB mTHPs (and, when asked, hugetlb pages), writes and reads, fork and
exit, munmap and mprotect of whole mappings, vmsplice into a pipe, io_uring pins with
device reads and writes through them, unpin, MADV_PAGEOUT (of THPs too, which are filled
first as cow.c fills them: this kernel maps a THP's zero-filled pages to the zero page
when it splits it for swap, which the simulator does not model).  The generator keeps track of what each
process maps and how, so every step is one the process can take without a signal: a
write only where it may write, a read only where something is mapped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("base", "thp", "mthp", "hugetlb", "swap")
#: pages of the mTHP regions (64 KiB folios, two of them)
_MTHP_PAGES, _MTHP_FOLIO = 32, 16


@dataclass
class _Proc:
    name: str
    maps: dict[str, bool] = field(default_factory=dict)     # region -> writable


@dataclass
class _Ref:
    name: str
    owner: str
    pin: bool


def random_scenario(rng: random.Random, index: int, steps: int = 10,
                    kinds: tuple[str, ...] = ("base", "thp")) -> str:
    """One sequence as scenario text, named ``random-INDEX``."""
    lines = [f"scenario random-{index}", f'title "random sequence {index}"', "tags random", "",
             "spawn -> p0"]
    procs = [_Proc("p0")]
    regions: dict[str, tuple[str, int]] = {}                 # name -> (kind, pages)
    refs: list[_Ref] = []
    made = {"p": 1, "r": 0, "ref": 0}
    pooled = 0

    def new_region(proc: _Proc) -> None:
        nonlocal pooled
        kind = rng.choice([k for k in kinds if k != "swap"])
        name = f"r{made['r']}"
        made["r"] += 1
        if kind == "thp":
            lines.append(f"mmap_thp {proc.name} 512 -> {name}")
            regions[name] = ("thp", 512)
        elif kind == "mthp":
            lines.append(f"mmap_thp {proc.name} {_MTHP_PAGES} {_MTHP_FOLIO} -> {name}")
            regions[name] = ("mthp", _MTHP_PAGES)
        elif kind == "hugetlb":
            # one page more in the pool for each mapping: copies soon run out of pages,
            # and the reservation's owner takes the page from the children
            pooled += 1
            lines.append(f"hugetlb_pool {pooled}")
            lines.append(f"mmap_hugetlb {proc.name} 1 private -> {name}")
            regions[name] = ("hugetlb", 1)
        else:
            pages = rng.choice((1, 2))
            lines.append(f"mmap {proc.name} {pages} private -> {name}")
            regions[name] = ("base", pages)
        proc.maps[name] = True
        lines.append(f"write {proc.name} {name}")       # filled, a THP's every page

    def where(name: str) -> str:
        kind, pages = regions[name]
        if kind in ("thp", "mthp"):
            return rng.choice((f"{name}[0]", f"{name}[{rng.randrange(1, pages)}]", f"{name}[0:2]"))
        return name if pages == 1 or rng.random() < 0.5 else f"{name}[{rng.randrange(pages)}]"

    def swappable(name: str) -> bool:
        return regions[name][0] in ("base", "thp", "mthp")

    new_region(procs[0])
    for _ in range(steps):
        proc = rng.choice(procs)
        mapped = list(proc.maps)
        writable = [r for r, w in proc.maps.items() if w]
        choices = ["mmap"] if len(regions) < 3 else []
        if writable:
            choices += ["write"] * 4 + ["pin"]
        if mapped:
            choices += ["read"] * 2 + ["mprotect", "munmap", "vmsplice"]
            if "swap" in kinds and any(swappable(r) for r in mapped):
                choices.append("pageout")
        if len(procs) < 3:
            choices += ["fork"] * 3
        if len(procs) > 1:
            choices.append("exit")
        live_refs = [r for r in refs if any(p.name == r.owner for p in procs)]
        if live_refs:
            choices += ["dma_read", "dma_write", "release"]
        op = rng.choice(choices)
        if op == "mmap":
            new_region(proc)
        elif op == "write":
            lines.append(f"write {proc.name} {where(rng.choice(writable))}")
        elif op == "read":
            lines.append(f"read {proc.name} {where(rng.choice(mapped))}")
        elif op == "mprotect":
            r = rng.choice(mapped)
            proc.maps[r] = not proc.maps[r]
            lines.append(f"mprotect {proc.name} {r} {'rw' if proc.maps[r] else 'ro'}")
        elif op == "munmap":
            r = rng.choice(mapped)
            del proc.maps[r]
            lines.append(f"munmap {proc.name} {r}")
        elif op == "vmsplice":
            name = f"pipe{made['ref']}"
            made["ref"] += 1
            lines.append(f"vmsplice {proc.name} {where(rng.choice(mapped))} -> {name}")
            refs.append(_Ref(name, proc.name, pin=False))
        elif op == "pin":
            name = f"pin{made['ref']}"
            made["ref"] += 1
            lines.append(f"pin {proc.name} {where(rng.choice(writable))} write longterm -> {name}")
            refs.append(_Ref(name, proc.name, pin=True))
        elif op == "pageout":
            lines.append(f"pageout {proc.name} {rng.choice([r for r in mapped if swappable(r)])}")
        elif op == "fork":
            child = _Proc(f"p{made['p']}", dict(proc.maps))
            made["p"] += 1
            procs.append(child)
            lines.append(f"fork {proc.name} -> {child.name}")
        elif op == "exit":
            procs.remove(proc)
            lines.append(f"exit {proc.name}")
        elif op in ("dma_read", "dma_write", "release"):
            ref = rng.choice(live_refs)
            if op == "dma_write" and not ref.pin:
                op = "dma_read"                    # a pipe is only read
            if op == "release":
                refs.remove(ref)
                lines.append(f"{'unpin' if ref.pin else 'put'} {ref.name}")
            else:
                lines.append(f"{op} {ref.name}")
    return "\n".join(lines) + "\n"


def random_scenarios(n: int, seed: int = 0, steps: int = 10,
                     kinds: tuple[str, ...] = ("base", "thp")) -> list[str]:
    """``n`` sequences, the same for the same seed."""
    rng = random.Random(seed)
    return [random_scenario(rng, i, steps, kinds) for i in range(n)]
