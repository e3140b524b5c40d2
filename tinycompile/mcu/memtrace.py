"""Data addresses of a QEMU run: a TCG plugin (built here, once, with the host's C compiler) that records every load
and store the guest executes, in order, for the data cache model of :mod:`tinycompile.mcu.dcache`.

QEMU's ``-d exec`` trace (:mod:`tinycompile.mcu.trace`) has no data addresses; QEMU's plugin interface does (QEMU
7.2 exports it; Debian ships no plugin, so this module writes and compiles its own against the interface's few
functions). Each access is one record of two little-endian 32-bit words: the instruction's address with bit 0 set
for a store, and the data address. Records go into a file the plugin maps shared, so that they survive the traced
QEMU being killed at the last kernel's end (:func:`tinycompile.mcu.trace.trace_firmware` stops it there).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from tinycompile.resources import rtl_build_dir

# The plugin interface of QEMU 7.2 (API version 1), declared here for the functions used.
_SOURCE = r"""
/* tinycompile's QEMU plugin: every guest load and store as (insn address | is_store, data address). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint64_t qemu_plugin_id_t;
typedef uint32_t qemu_plugin_meminfo_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
typedef void (*mem_cb_t)(unsigned int, qemu_plugin_meminfo_t, uint64_t, void *);
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *, mem_cb_t, enum qemu_plugin_cb_flags,
                                             enum qemu_plugin_mem_rw, void *);
extern int qemu_plugin_mem_is_store(qemu_plugin_meminfo_t);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define CHUNK (1u << 22) /* records per mapped chunk (32 MiB) */
static int fd = -1;
static uint32_t *chunk;
static uint64_t used = CHUNK, mapped;

static void next_chunk(void) {
  if (chunk) munmap(chunk, (size_t)CHUNK * 8);
  if (ftruncate(fd, (off_t)((mapped + CHUNK) * 8)) != 0) abort();
  chunk = mmap(NULL, (size_t)CHUNK * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(mapped * 8));
  if (chunk == MAP_FAILED) abort();
  mapped += CHUNK;
  used = 0;
}

static void on_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *pc) {
  (void)vcpu;
  if (used == CHUNK) next_chunk();
  chunk[2 * used] = (uint32_t)(uintptr_t)pc | (qemu_plugin_mem_is_store(info) ? 1u : 0u);
  chunk[2 * used + 1] = (uint32_t)vaddr;
  used++;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    qemu_plugin_register_vcpu_mem_cb(insn, on_access, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW,
                                     (void *)(uintptr_t)qemu_plugin_insn_vaddr(insn));
  }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                                               char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++)
    if (strncmp(argv[i], "out=", 4) == 0) fd = open(argv[i] + 4, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    fprintf(stderr, "tinycompile memtrace plugin: give out=<file>\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  return 0;
}
"""


def plugin() -> Path:
    """The compiled plugin (built on first use into the RTL build cache); RuntimeError if the host has no C
    compiler."""
    digest = hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]
    folder = rtl_build_dir() / "qemu-plugins"
    lib = folder / f"libtc_memtrace_{digest}.so"
    if lib.is_file():
        return lib
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("the data-address trace needs a host C compiler (cc) to build its QEMU plugin")
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"tc_memtrace_{digest}.c"
    src.write_text(_SOURCE)
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")  # per process: two first builds at once do not share a file
    res = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o", str(tmp), str(src)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the QEMU plugin failed: {res.stderr[-1000:]}")
    tmp.replace(lib)  # atomic: a concurrent build never sees half a library
    return lib


def plugin_args(out: Path) -> list[str]:
    """QEMU's options that load the plugin, writing its records to ``out``."""
    return ["-plugin", f"{plugin()},out={out}"]


def read_records(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(pc_and_store, address)`` of every recorded access (uint32 arrays; the trailing unused space dropped)."""
    raw = np.fromfile(path, dtype="<u4").reshape(-1, 2)
    used = np.flatnonzero(raw[:, 0])
    n = int(used[-1]) + 1 if len(used) else 0
    return raw[:n, 0].copy(), raw[:n, 1].copy()
