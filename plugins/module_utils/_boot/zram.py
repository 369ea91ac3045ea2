# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zram swap a boot creates again: zram-generator's configuration and Debian's zramswap.

Loaded only on a host that configures zram (memory_files.host_zram): the size expression's
evaluator needs the ast module, which no other run pays for. No Ansible import.
"""

from __future__ import annotations

import ast
import re
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.dbfleet.memory.plugins.module_utils._boot.memory import (  # pylint: disable=protected-access
    GENERATOR_PRESENT,
    PAGE_KB,
    Param,
    ZramBoot,
    ZramDevice,
    _flag_value,
    _text,
)


def _swap_kb_of_disksize(disksize_bytes: int) -> int:
    # The kernel rounds disksize up to a page (zram_drv.c disksize_store); mkswap keeps the
    # first page for its header, so the area adds one page less (as a swap file does).
    pages = -(-disksize_bytes // (PAGE_KB * 1024))
    return max(pages - 1, 0) * PAGE_KB


class _ZramExpr(ast.NodeVisitor):
    """The arithmetic zram-generator's zram-size may use (fasteval): numbers, ram, + - * / %,
    parentheses, min() and max(). Anything else cannot be told."""

    def __init__(self, ram_mb: float) -> None:
        self.ram_mb = ram_mb

    def visit_Expression(self, node: ast.Expression) -> float:
        return self.visit(node.body)

    def visit_Constant(self, node: ast.Constant) -> float:
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        raise ValueError("not a number")

    def visit_Name(self, node: ast.Name) -> float:
        if node.id == "ram":
            return self.ram_mb
        raise ValueError("unknown name %s" % node.id)

    def visit_BinOp(self, node: ast.BinOp) -> float:
        left, right = self.visit(node.left), self.visit(node.right)
        ops = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right, ast.Mult: lambda: left * right,
               ast.Div: lambda: left / right, ast.Mod: lambda: left % right}
        for op, fn in ops.items():
            if isinstance(node.op, op):
                return fn()
        raise ValueError("operator")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> float:
        if isinstance(node.op, ast.USub):
            return -self.visit(node.operand)
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        raise ValueError("operator")

    def visit_Call(self, node: ast.Call) -> float:
        if isinstance(node.func, ast.Name) and node.func.id in ("min", "max") and node.args and not node.keywords:
            values = [self.visit(arg) for arg in node.args]
            return min(values) if node.func.id == "min" else max(values)
        raise ValueError("function")

    def generic_visit(self, node: ast.AST) -> float:
        raise ValueError("unsupported %s" % type(node).__name__)


def zram_size_mb(expression: str, memtotal_kb: int) -> Optional[float]:
    """zram-size evaluated with ram = MemTotal in MB; None when the expression is beyond this model."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return float(_ZramExpr(memtotal_kb / 1024.0).visit(tree))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def parse_ini_sections(data: bytes) -> List[Tuple[str, str, str, int]]:
    """(section, key, value, lineno) of a systemd-style ini file, in order; a section header
    is a row of its own with key and value empty."""
    out: List[Tuple[str, str, str, int]] = []
    section = ""
    for lineno, raw in enumerate(_text(data).splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            out.append((section, "", "", lineno))
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out.append((section, key.strip(), value.strip(), lineno))
    return out


ZRAM_DEFAULT_SIZE = "min(ram / 2, 4096)"


def zram_generator_devices(files: Sequence[Tuple[str, bytes]], memtotal_kb: int, generator: str,
                           params: Sequence[Param] = ()) -> ZramBoot:
    """The zram swap devices zram-generator creates at boot.

    ``files``: the configuration in the order zram-generator reads it (the main file first,
    then the drop-ins sorted by name; later settings win), as _boot.memory_files orders them.
    A device is a ``[zramN]`` section; ``zram-size`` defaults to min(ram / 2, 4096) MB;
    ``host-memory-limit`` (MB, "none" by default) drops the device on a larger host; a device
    with a ``mount-point`` or a ``fs-type`` other than swap is no swap. ``systemd.zram=0`` on
    the command line disables the generator.
    """
    notes: List[str] = []
    if generator != GENERATOR_PRESENT:
        if files:
            notes.append("zram-generator configuration found but the generator is %s: no zram device" % generator)
        return ZramBoot((), tuple(notes))
    if _flag_value(params, ("systemd.zram",)) is False:
        return ZramBoot((), ("systemd.zram=0 on the command line: zram-generator makes no device",))
    settings: Dict[str, Dict[str, Tuple[str, str]]] = {}
    sources: Dict[str, str] = {}
    for path, data in files:
        for section, key, value, lineno in parse_ini_sections(data):
            if re.fullmatch(r"zram\d+", section):
                # A section alone makes a device with every default.
                sources.setdefault(section, "%s [%s]" % (path, section))
                if key:
                    settings.setdefault(section, {})[key] = (value, "%s:%d" % (path, lineno))
    devices: List[ZramDevice] = []
    ram_mb = memtotal_kb / 1024.0
    for name in sorted(sources, key=lambda s: int(s[4:])):
        conf = settings.get(name, {})
        source = sources[name]
        limit = conf.get("host-memory-limit", ("none", ""))[0]
        if limit != "none":
            try:
                if ram_mb > float(limit):
                    notes.append("%s: host-memory-limit %s MB is below this host's %.0f MB: not created"
                                 % (name, limit, ram_mb))
                    continue
            except ValueError:
                devices.append(ZramDevice(name, None, source, "host-memory-limit %r cannot be read" % limit))
                continue
        if "mount-point" in conf or conf.get("fs-type", ("swap", ""))[0] != "swap":
            notes.append("%s is a file system, not swap" % name)
            continue
        expression = conf.get("zram-size", (ZRAM_DEFAULT_SIZE, ""))[0]
        size_mb = zram_size_mb(expression, memtotal_kb)
        if size_mb is None:
            devices.append(ZramDevice(name, None, source, "zram-size = %s cannot be evaluated here" % expression))
            continue
        if size_mb <= 0:
            notes.append("%s: zram-size = %s gives 0: not created" % (name, expression))
            continue
        devices.append(ZramDevice(name, _swap_kb_of_disksize(int(size_mb * 1024 * 1024)), source,
                                  "zram-size = %s with ram = %.0f MB" % (expression, ram_mb)))
    return ZramBoot(tuple(devices), tuple(notes))


_SHELL_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*(?:#.*)?$")


def zramswap_devices(data: Optional[bytes], enabled: bool, memtotal_kb: int,
                     path: str = "/etc/default/zramswap") -> ZramBoot:
    """The one device (zram0) Debian's zramswap.service creates when it is enabled.

    Current zram-tools: PERCENT (of MemTotal) wins over SIZE (MiB, 256 by default). Older
    releases read ALLOCATION (MiB) and PERCENTAGE instead: when the file sets those, the
    smaller of both readings is taken, since the installed script's version is not known here.
    """
    if not enabled:
        return ZramBoot()
    source = "zramswap.service (%s)" % path
    values: Dict[str, str] = {}
    for raw in _text(data or b"").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SHELL_ASSIGN.match(line)
        if match is None:
            return ZramBoot((ZramDevice("zram0", None, source, "%s holds shell this model does not read: %r"
                                        % (path, line)),))
        values[match.group(1)] = match.group(2).strip("\"'")

    def mib_or_percent(size_key: str, percent_key: str) -> Optional[int]:
        try:
            if values.get(percent_key):
                return memtotal_kb * 1024 * int(values[percent_key]) // 100
            return int(values.get(size_key) or 256) * 1024 * 1024
        except ValueError:
            return None

    current = mib_or_percent("SIZE", "PERCENT")
    candidates = [current]
    if "ALLOCATION" in values or "PERCENTAGE" in values:
        candidates.append(mib_or_percent("ALLOCATION", "PERCENTAGE"))
    if any(c is None for c in candidates):
        return ZramBoot((ZramDevice("zram0", None, source, "a size in %s is not a number" % path),))
    disksize = min(c for c in candidates if c is not None)
    return ZramBoot((ZramDevice("zram0", _swap_kb_of_disksize(disksize), source,
                                "zramswap: %s" % (", ".join("%s=%s" % kv for kv in sorted(values.items())
                                                            if kv[0] in ("SIZE", "PERCENT", "ALLOCATION",
                                                                         "PERCENTAGE")) or "SIZE=256 (default)")),))
