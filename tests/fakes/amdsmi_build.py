"""Builds ``tests/fakes/amdsmi_fake.c`` into a ROCm-like tree (``DIR/lib/libamd_smi.so``) for the
installed ``amdsmi`` package: every symbol the binding binds exists, and the struct offsets are the
binding's own (see the C file's header). Point ``ROCM_PATH`` at the returned directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

FAKE_SRC = Path(__file__).with_name("amdsmi_fake.c")

_OFFSETS = """
import json
from amdsmi import amdsmi_wrapper as w
p, a = w.amdsmi_power_info_t, w.amdsmi_asic_info_t
print(json.dumps({"POWER_INFO_SIZE": w.ctypes.sizeof(p), "POWER_CURRENT_OFF": p.current_socket_power.offset,
                  "POWER_AVERAGE_OFF": p.average_socket_power.offset, "ASIC_INFO_SIZE": w.ctypes.sizeof(a),
                  "ASIC_MARKET_NAME_OFF": a.market_name.offset}))
"""


def amdsmi_wrapper_source() -> Path | None:
    """The installed binding's ``amdsmi_wrapper.py`` (found without importing it), or None."""
    spec = importlib.util.find_spec("amdsmi")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "amdsmi_wrapper.py"
    return path if path.exists() else None


def _compile(gcc: str, out: Path, sources: list[Path], defines: dict[str, int]) -> Path:
    lib = out / "lib" / "libamd_smi.so"
    lib.parent.mkdir(parents=True, exist_ok=True)
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", *flags, "-o", str(lib), *map(str, sources)],
                   check=True)
    return out


def build(gcc: str, out: Path) -> Path:
    wrapper = amdsmi_wrapper_source()
    if wrapper is None:
        raise FileNotFoundError("the amdsmi package is not installed")
    bound = set(re.findall(r"_libraries\['libamd_smi\.so'\]\.(\w+)", wrapper.read_text()))
    implemented = set(re.findall(r"^int (amdsmi_\w+)\(", FAKE_SRC.read_text(), flags=re.M))
    stubs = out / "amdsmi_unsupported.c"
    out.mkdir(parents=True, exist_ok=True)
    stubs.write_text("".join(f"int {name}(void) {{ return 2; /* AMDSMI_STATUS_NOT_SUPPORTED */ }}\n"
                             for name in sorted(bound - implemented)))
    first = _compile(gcc, out / "stage1", [FAKE_SRC, stubs], {})
    env = dict(os.environ, ROCM_PATH=str(first))
    proc = subprocess.run([sys.executable, "-c", _OFFSETS], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    offsets = json.loads(proc.stdout.strip().splitlines()[-1])
    return _compile(gcc, out, [FAKE_SRC, stubs], offsets)
