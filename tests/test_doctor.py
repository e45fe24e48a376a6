"""``energybench doctor`` and the GPU/build helpers behind it (``energybench.gpu``).

The CLI runs for real in a subprocess, with the NVML stand-in (``tests/fakes/nvml_fake.c``,
compiled here) on ``LD_LIBRARY_PATH`` so the GPU section has something to list; llama.cpp is the
real installed build. A "broken build" is a real child process that dies of SIGSEGV while
importing ``llama_cpp`` (a package shadowing it on ``PYTHONPATH``).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from energybench import gpu, sysinfo
from energybench.errors import BackendError, UsageError





@pytest.fixture(scope="module")
def real_llama() -> dict:
    """The installed llama.cpp's own answers, asked directly (in a child process)."""
    code = ("import json, llama_cpp as ll; ll.llama_backend_init(); print(json.dumps({"
            "'offload': bool(ll.llama_supports_gpu_offload()), "
            "'info': ll.llama_print_system_info().decode().strip()}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def crashing_llama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``llama_cpp`` that segfaults on import, first on PYTHONPATH for child processes."""
    pkg = tmp_path / "shadow" / "llama_cpp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import ctypes\nctypes.string_at(0)\n")
    monkeypatch.setenv("PYTHONPATH", str(pkg.parent))
    gpu.clear_cache()
    yield pkg
    gpu.clear_cache()


def run_doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVML_")}
    full_env.update(env)
    full_env.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-m", "energybench", "doctor", *args], capture_output=True,
                          text=True, env=full_env, timeout=300)


# ------------------------------------------------------------------------------ the CLI
def test_doctor_json_lists_build_devices_gpus_and_meters(fake_nvml_dir: Path, real_llama: dict) -> None:
    proc = run_doctor("--json", env={"LD_LIBRARY_PATH": str(fake_nvml_dir), "FAKE_NVML_COUNT": "2",
                                     "FAKE_NVML_1_MODE": "instant", "FAKE_NVML_1_NAME": "NVIDIA L4"})
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["energybench"]["version"]
    assert r["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    ll = r["llama_cpp"]
    assert ll["ok"] is True and ll["package_version"] and ll["version"]
    assert ll["system_info"] == real_llama["info"]
    assert ll["supports_gpu_offload"] is real_llama["offload"]
    assert any(d["type"] == "cpu" and d["memory_total_bytes"] > 0 for d in ll["devices"])
    assert [g["name"] for g in r["gpus"]] == ["NVIDIA H100 80GB HBM3", "NVIDIA L4"]
    assert [g["power_method"] for g in r["gpus"]] == ["energy", "instant"]
    assert r["nvml"]["available"] is True
    nvml = [m for m in r["meters"] if m["name"] == "nvml"]
    assert len(nvml) == 1 and nvml[0]["available"] is True
    cpu_only_warning = [w for w in r["warnings"] if "CPU-only" in w]
    assert bool(cpu_only_warning) is (not real_llama["offload"])
    if cpu_only_warning:
        assert "GGML_CUDA=ON" in cpu_only_warning[0]
    assert r["cpu"]["build_has_amx"] is gpu.build_has_amx(real_llama["info"])


def test_doctor_human_output_without_driver(tmp_path: Path) -> None:
    proc = run_doctor(env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "ggml devices" in proc.stdout and "meters" in proc.stdout
    assert "GPU offload" in proc.stdout
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:  # no real driver here either: NVML must say why it is unavailable
        assert "libnvidia-ml.so.1 not found" in proc.stdout


def test_doctor_survives_a_crashing_llama_build(fake_nvml_dir: Path, crashing_llama: Path) -> None:
    proc = run_doctor("--json", env={"LD_LIBRARY_PATH": str(fake_nvml_dir)})
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["llama_cpp"]["ok"] is False
    assert r["llama_cpp"]["returncode"] == -11  # SIGSEGV in the child, not in doctor
    assert any("llama.cpp could not be loaded" in w for w in r["warnings"])
    assert r["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"  # the rest of the report is still there


# ------------------------------------------------------------------------------ llama.cpp probe
def test_llama_probe_reports_a_native_crash(crashing_llama: Path) -> None:
    out = gpu.llama_cpp_probe()
    assert out["ok"] is False and out["returncode"] == -11
    assert "died" in out["error"]


def test_refuse_cpu_only_offload() -> None:
    gpu.refuse_cpu_only_offload([0, 0], supports_offload=False)  # CPU-only points need no GPU
    gpu.refuse_cpu_only_offload([0, 22, -1], supports_offload=True)
    with pytest.raises(UsageError) as exc:
        gpu.refuse_cpu_only_offload([0, 22, -1, 22], supports_offload=False)
    assert exc.value.exit_code == 2
    line = exc.value.one_line()
    assert line.startswith("n_gpu_layers -1, 22 asks for GPU offload, but the installed llama-cpp-python is a CPU-only")
    assert gpu.CUDA_INSTALL_ONE_LINER in line and "docs/cuda.md" in line and "\n" not in line


def test_supports_gpu_offload_asks_the_build_once(real_llama: dict) -> None:
    gpu.clear_cache()
    assert gpu.supports_gpu_offload() is real_llama["offload"]
    assert gpu.supports_gpu_offload() is real_llama["offload"]  # cached: one child process
    info = gpu._llama_cpp_probe_cached.cache_info()
    assert info.misses == 1 and info.hits >= 1


def test_supports_gpu_offload_on_a_broken_build_is_a_backend_error(crashing_llama: Path) -> None:
    with pytest.raises(BackendError, match="could not check whether llama.cpp supports GPU offload"):
        gpu.supports_gpu_offload()


# ------------------------------------------------------------------------------ AMX
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu vme avx512f avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities

processor\t: 1
"""
SYSINFO_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
               "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
               "OPENMP = 1 | REPACK = 1 |")
SYSINFO_NO_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                  "AVX512 = 1 | AVX512_VNNI = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")


def test_amx_detection_and_warning(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    flags = gpu.amx_flags(sysinfo.cpu_flags(cpuinfo))
    assert flags == ["amx_bf16", "amx_tile", "amx_int8"]
    assert sysinfo.cpu_model(cpuinfo) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert gpu.build_has_amx(SYSINFO_AMX) is True
    assert gpu.build_has_amx(SYSINFO_NO_AMX) is False
    assert gpu.build_has_amx("") is None
    warning = gpu.amx_warning(flags, True)
    assert warning and "ggml_backend_amx_mul_mat" in warning and "--no-repack" in warning and "once per machine" in warning
    assert gpu.amx_warning(flags, False) is None
    assert gpu.amx_warning([], True) is None
    no_amx = tmp_path / "cpuinfo2"
    no_amx.write_text(CPUINFO.replace(" amx_bf16", "").replace(" amx_tile", "").replace(" amx_int8", ""))
    assert gpu.amx_flags(sysinfo.cpu_flags(no_amx)) == []
    assert sysinfo.cpu_flags(tmp_path / "missing") == frozenset()
