"""Firmware integration files: a small firmware project consumes the generated CMake library
through add_subdirectory (host gcc: built and run; arm-none-eabi-gcc through a toolchain file:
built and linked), and a Makefile includes the generated .mk fragment. The Zephyr module, the
PlatformIO manifest and the header's promises: test_integration_files.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest

from edgekit.plugins.mcu.generator import generate

from .helpers import AUTOENCODER

APP_CMAKE = """cmake_minimum_required(VERSION 3.13)
project(firmware C)
add_subdirectory(${MODEL_DIR} model_build)
add_executable(app ${MODEL_DIR}/example_main.c)
target_link_libraries(app PRIVATE ae)
"""

ARM_TOOLCHAIN = """set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -Wall -Wextra -Werror")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nano.specs --specs=nosys.specs")
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ae")
    generate(onnx.load(str(AUTOENCODER)), d, name="ae")
    return d


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _expected_first_output(model_dir: Path) -> float:
    """What example_main should print for output_0[0], computed with onnxruntime."""
    import numpy as np

    from .helpers import ort_run
    model = onnx.load(str(AUTOENCODER))
    x = (np.arange(640) % 17 / 17.0).astype(np.float32).reshape(1, 640)
    return float(ort_run(model, {model.graph.input[0].name: x})[0].reshape(-1)[0])


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_cmake_add_subdirectory_host(model_dir, tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(APP_CMAKE)
    build = tmp_path / "build"
    _run(["cmake", "-S", str(tmp_path), "-B", str(build), f"-DMODEL_DIR={model_dir}",
          "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror", "-DCMAKE_BUILD_TYPE=Release"], tmp_path)
    _run(["cmake", "--build", str(build), "-j2"], tmp_path)
    out = _run([str(build / "app")], tmp_path)
    first = float(re.search(r"output_0\[0\] = (\S+)", out).group(1))
    assert abs(first - _expected_first_output(model_dir)) < 1e-3


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_cmake_add_subdirectory_arm_toolchain_file(model_dir, tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(APP_CMAKE)
    (tmp_path / "arm.cmake").write_text(ARM_TOOLCHAIN)
    build = tmp_path / "build"
    _run(["cmake", "-S", str(tmp_path), "-B", str(build), f"-DMODEL_DIR={model_dir}",
          f"-DCMAKE_TOOLCHAIN_FILE={tmp_path / 'arm.cmake'}", "-DCMAKE_BUILD_TYPE=MinSizeRel"], tmp_path)
    _run(["cmake", "--build", str(build), "-j2"], tmp_path)
    elf = build / "app"
    header = elf.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[18] == 40  # e_machine EM_ARM
    sizes = _run(["arm-none-eabi-size", str(elf)], tmp_path).splitlines()[1].split()
    assert int(sizes[0]) > 1_063_456  # text holds the autoencoder's 1,063,456 B of weights


def test_makefile_fragment(model_dir, tmp_path):
    (tmp_path / "Makefile").write_text(
        f"include {model_dir}/ae.mk\n"
        "CFLAGS += -Wall -Wextra -Werror -O2 $(AE_CFLAGS)\n"
        "app: $(AE_SRCS) $(AE_DIR)/example_main.c\n"
        "\t$(CC) $(CFLAGS) -o $@ $^ $(AE_LDLIBS)\n")
    _run(["make", "-s", "app"], tmp_path)
    out = _run([str(tmp_path / "app")], tmp_path)
    first = float(re.search(r"output_0\[0\] = (\S+)", out).group(1))
    assert abs(first - _expected_first_output(model_dir)) < 1e-3
