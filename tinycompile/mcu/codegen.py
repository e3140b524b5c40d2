"""TIR PrimFuncs -> C source (TVM's ``c`` target) or an ELF object (TVM's LLVM target for the chip)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tvm

ABI_HEADER = "tc_tvm_abi.h"
BUILD_CONFIG = {"tirx.disable_assert": True}  # shapes are fixed at build time; the checks would only cost flash
_INCLUDE = re.compile(r'^#include\s+"(tvm|dlpack)/[^"]+"\s*$', re.M)
# TVM declares every extern it calls; the DSP kernels' intrinsics are declared by arm_acle.h / our ABI header.
_INTRIN_DECL = re.compile(r'^#ifdef __cplusplus\nextern "C"\n#endif\nTVM_DLL int32_t (tc_load32|__sxtb16|__smla\w*)\(.*\);\n', re.M)
_ALLOC = re.compile(r"TVMBackendAllocWorkspace\(\s*\d+,\s*\w+,\s*\(uint64_t\)(\d+)")


def build_c(tir: tvm.IRModule, dsp: bool = False) -> str:
    """C source of all kernels, including our own small ABI header instead of TVM's, so it builds stand-alone.

    ``dsp``: the kernels call ACLE intrinsics (``__smlad``, ``__sxtb16``, ...), so the source includes arm_acle.h.
    """
    with tvm.transform.PassContext(opt_level=3, config=BUILD_CONFIG):
        lib = tvm.tirx.build(tir, target=tvm.target.Target({"kind": "c"}))
    src = lib.inspect_source()
    src = _INCLUDE.sub("", src)
    src = _INTRIN_DECL.sub("", src)
    acle = "#include <arm_acle.h>\n" if dsp else ""
    return f'{acle}#include "{ABI_HEADER}"\n' + src


def build_llvm(tir: tvm.IRModule, llvm_target: dict[str, Any], path: Path) -> None:
    """Write an object file of all kernels for ``llvm_target`` (a TVM dict target) to ``path``."""
    with tvm.transform.PassContext(opt_level=3, config=BUILD_CONFIG):
        lib = tvm.tirx.build(tir, target=tvm.target.Target(dict(llvm_target)))
    lib.write_to_file(str(path))


def workspace_bytes(c_source: str) -> int:
    """Scratch the kernels request from ``TVMBackendAllocWorkspace``: the largest total of any one kernel.

    Kernels run one at a time and free their scratch before returning, so the largest kernel's need bounds the
    static scratch region (each request is rounded up to 8 bytes, as the shim does).
    """
    worst = 0
    for body in re.split(r"\n(?=TVM_DLL int32_t __tvm_ffi_)", c_source):
        worst = max(worst, sum(-(-int(n) // 8) * 8 for n in _ALLOC.findall(body)))
    return worst


ABI_HEADER_TEXT = """\
/* The few TVM / DLPack ABI types the generated kernels use (layout-compatible with TVM 0.27 and DLPack 1.x),
 * so the library builds without TVM's headers. */
#ifndef TC_TVM_ABI_H
#define TC_TVM_ABI_H
#include <stdint.h>
#include <stddef.h>

#define TVM_DLL
#define TVM_EXPORTS

typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } DLDataType;  /* code 0: int */
typedef struct { int32_t device_type; int32_t device_id; } DLDevice;         /* device_type 1: CPU */
typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} DLTensor;

/* A packed argument: type_index 7 (kTVMFFIDLTensorPtr) with v_ptr pointing at a DLTensor. */
typedef struct {
  int32_t type_index;
  uint32_t zero_padding;
  union { int64_t v_int64; double v_float64; void* v_ptr; };
} TVMFFIAny;
#define TC_FFI_DLTENSOR_PTR 7

/* A 32-bit load from any address (the DSP kernels read four int8 or two int16 values at once); compiles to one
 * load on cores with unaligned access. */
static inline int32_t tc_load32(const void* p) { int32_t v; __builtin_memcpy(&v, p, 4); return v; }

void* TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint);
int TVMBackendFreeWorkspace(int device_type, int device_id, void* ptr);
#endif
"""
