"""Child process of unpack_packer: ``python -I -m aegis_engine.scanning.emulate_child IN OUT
[SECONDS]`` runs the packed PE32 ``IN`` on the Unicorn CPU emulator from its entry point and
writes what it unpacked: ``OUT`` is the image as it stands when the emulation ends (a PE file
again, see unpack_emu_image.as_file, whose entry point is the last place where execution
entered memory the stub had written: the original entry point), ``OUT-alloc-<address>`` each
memory block the stub allocated and wrote, ``OUT-zip-<n>`` each zip archive found in those.

The emulation ends when the program calls an API that an unpacking stub does not need (its
first call after the jump to the original entry point), exits, faults with no handler, or
reaches the instruction cap, :data:`MAX_EXCEPTIONS` or the time limit (``SECONDS``).
Exceptions the stub raises on purpose (int3, division by zero, access violations) go to the
handler its SEH chain names, as on Windows. The Windows it sees: unpack_emu_winapi.

See :func:`main` for what it prints. ``unicorn`` (GPL-2.0, the ``packers`` extra) is imported
here only: the engine never imports this module.
"""

from __future__ import annotations

import errno
import gc
import os
import struct
import sys
import time
from typing import Any

from unicorn import (  # type: ignore[attr-defined]  # unicorn re-exports these untyped
    UC_ARCH_X86,
    UC_HOOK_BLOCK,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_INVALID,
    UC_HOOK_MEM_WRITE,
    UC_MODE_32,
    Uc,
    UcError,
)
from unicorn.x86_const import (
    UC_X86_REG_EAX,
    UC_X86_REG_EBP,
    UC_X86_REG_EBX,
    UC_X86_REG_ECX,
    UC_X86_REG_EDI,
    UC_X86_REG_EDX,
    UC_X86_REG_EFLAGS,
    UC_X86_REG_EIP,
    UC_X86_REG_ESI,
    UC_X86_REG_ESP,
    UC_X86_REG_FS,
    UC_X86_REG_GDTR,
    UC_X86_REG_SS,
)

from ..errors import ContainerError
from .unpack_emu_carve import MAX_ZIPS, carve_zips
from .unpack_emu_image import PAGE, Image, as_file, load
from .unpack_emu_winapi import DLL_AREA, PEB, SEH_RETURN, STACK_TOP, TEB, Process, Stop, call

MAX_INSTRUCTIONS = 40_000_000
"""Instructions one emulation may run."""
DEFAULT_SECONDS = 20.0
MAX_EXCEPTIONS = 64
GDT = 0x7FFC0000
FINAL_RECORD = STACK_TOP - 0x20
START_UP = "BaseThreadInitThunk"
"""Where the entry point returns to (a kernel32 address, as stubs that look for kernel32's
header from there expect)."""
_REGS = (
    UC_X86_REG_EDI, UC_X86_REG_ESI, UC_X86_REG_EBX, UC_X86_REG_EDX, UC_X86_REG_ECX,
    UC_X86_REG_EAX, UC_X86_REG_EBP, UC_X86_REG_EIP, None, UC_X86_REG_EFLAGS, UC_X86_REG_ESP,
)  # fmt: skip
"""CONTEXT's integer registers from +0x9C, in order (None: SegCs)."""
_CONTEXT_SIZE = 0x2CC
_EXCEPTION_CODES = {0: 0xC0000094, 1: 0x80000004, 3: 0x80000003}


def _new_cpu() -> Any:
    """A 32-bit x86 Unicorn CPU (unicorn's API is only partly typed: it is used as Any)."""
    return Uc(UC_ARCH_X86, UC_MODE_32)  # type: ignore[no-untyped-call]


class _Memory:
    def __init__(self, uc: Any) -> None:
        self.uc = uc

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, data)

    def map(self, address: int, size: int) -> None:
        self.uc.mem_map(address, size)


class Emulation:
    """One packed image in a fresh emulated process, registers as Windows leaves them at the
    entry point (EAX the entry point, EBX the PEB)."""

    def __init__(self, image: Image, seconds: float, data: bytes = b"") -> None:
        self.image = image
        self.deadline = time.monotonic() + seconds
        self.uc = _new_cpu()
        self.memory = _Memory(self.uc)
        self.proc = Process(self.memory, image.base, image.size, file_data=data)
        self.written: set[int] = set()
        self.entered: list[int] = []
        """Addresses where execution first entered a page written during the emulation, or a
        page of the image outside the entry point's section: the last is the original entry
        point."""
        self.visited: set[int] = set()
        self.stub = image.section_span(image.base + image.entry)
        self.stop_reason = ""
        self.hit_limit = False
        self.pending: int | None = None
        self.exceptions = 0
        self.uc.mem_map(image.base, image.size)
        self.uc.mem_write(image.base, bytes(image.memory))
        self.proc.setup_process()
        self.proc.resolve_imports(image.imports)
        self.initial = bytes(self.uc.mem_read(image.base, image.size))
        self.uc.mem_map(SEH_RETURN, PAGE)
        self.uc.mem_write(SEH_RETURN, b"\xc3")  # ends the translation block there
        self._segments()
        # as on Windows: the entry point returns into the process start-up code, whose
        # exception record (the last of the chain) lies just above
        esp = STACK_TOP - 0x3C
        start_up = self.proc.proc_address("kernel32.dll", START_UP)
        self.uc.mem_write(esp, struct.pack("<III", start_up, 0, 0))
        self.uc.mem_write(FINAL_RECORD, struct.pack("<II", 0xFFFFFFFF, start_up))
        self.uc.mem_write(TEB, struct.pack("<I", FINAL_RECORD))
        self.uc.reg_write(UC_X86_REG_ESP, esp)
        self.uc.reg_write(UC_X86_REG_EBP, esp + 0x10)
        self.uc.reg_write(UC_X86_REG_EAX, image.base + image.entry)
        self.uc.reg_write(UC_X86_REG_EBX, PEB)
        self.uc.hook_add(UC_HOOK_CODE, self._api, begin=DLL_AREA, end=0x70FFFFFF)
        self.uc.hook_add(UC_HOOK_MEM_WRITE, self._wrote)
        self.uc.hook_add(UC_HOOK_BLOCK, self._block)
        self.uc.hook_add(UC_HOOK_INTR, self._interrupt)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._invalid)

    def _segments(self) -> None:
        """A GDT: flat 32-bit code (0x08) and data (0x10, loaded in SS), and FS (0x3B) whose
        base is the TEB."""
        gdt = bytearray(0x80)
        for index, base, limit, access, flags in (
            (1, 0, 0xFFFFF, 0x9A, 0xC),
            (2, 0, 0xFFFFF, 0x92, 0xC),
            (7, TEB, 0xFFF, 0xF2, 0x4),
        ):
            value = (
                (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | access << 40
                | (limit >> 16 & 0xF) << 48 | flags << 52 | (base >> 24 & 0xFF) << 56
            )  # fmt: skip
            struct.pack_into("<Q", gdt, index * 8, value)
        self.uc.mem_map(GDT, PAGE)
        self.uc.mem_write(GDT, bytes(gdt))
        self.uc.reg_write(UC_X86_REG_GDTR, (0, GDT, len(gdt) - 1, 0))
        self.uc.reg_write(UC_X86_REG_SS, 0x10)
        self.uc.reg_write(UC_X86_REG_FS, 0x3B)

    def _wrote(self, uc: Any, access: int, address: int, size: int, value: int, _: object) -> None:
        self.written.add(address >> 12)
        if (address + size - 1) >> 12 != address >> 12:
            self.written.add((address + size - 1) >> 12)

    def _block(self, uc: Any, address: int, size: int, _: object) -> None:
        page = address >> 12
        if page in self.written:
            self.written.discard(page)
            self.entered.append(address)
        elif page not in self.visited and self.image.contains(address):
            self.visited.add(page)
            if not self.stub[0] <= address < self.stub[1]:
                self.entered.append(address)  # the stub left its section (ASPack's .text)
        if time.monotonic() > self.deadline:
            self._limit("its time limit")
            uc.emu_stop()

    def _api(self, uc: Any, address: int, size: int, _: object) -> None:
        if address == SEH_RETURN:
            self._seh_return()
            return
        found = self.proc.api_at(address)
        if found is None:
            self._stop(f"execution at {address:#x} in the stub DLL area")
            return
        if found[1] == START_UP:
            self._stop("the entry point returned")
            return
        esp = uc.reg_read(UC_X86_REG_ESP)

        def args(count: int) -> list[int]:
            return list(struct.unpack(f"<{count}I", uc.mem_read(esp + 4, 4 * count)))

        try:
            result, count = call(self.proc, found[1], args)
            (ret,) = struct.unpack("<I", uc.mem_read(esp, 4))
        except Stop as stop:
            self._stop(str(stop))
            return
        except UcError:
            self._stop(f"{found[1]} was called with arguments outside memory")
            return
        uc.reg_write(UC_X86_REG_EAX, result)
        uc.reg_write(UC_X86_REG_ESP, esp + 4 + 4 * count)
        uc.reg_write(UC_X86_REG_EIP, ret)

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.uc.emu_stop()

    def _interrupt(self, uc: Any, intno: int, _: object) -> None:
        if intno not in _EXCEPTION_CODES:
            self._stop(f"interrupt {intno}")
            return
        self.pending = _EXCEPTION_CODES[intno]
        if intno == 3:
            uc.reg_write(UC_X86_REG_EIP, uc.reg_read(UC_X86_REG_EIP) - 1)
        uc.emu_stop()

    def _invalid(
        self, uc: Any, access: int, address: int, size: int, value: int, _: object
    ) -> bool:
        self.pending = 0xC0000005
        return False

    def run(self) -> None:
        """Emulate from the entry point until a stop (see the module's docstring)."""
        self.uc.reg_write(UC_X86_REG_EIP, self.image.base + self.image.entry)
        while not self.stop_reason:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._limit("its time limit")
                break
            self.pending = None
            pc = self.uc.reg_read(UC_X86_REG_EIP)
            try:
                micros = int(left * 1_000_000)
                self.uc.emu_start(pc, 0xFFFFFFFF, timeout=micros, count=MAX_INSTRUCTIONS)
            except UcError as exc:
                if self.pending is None:
                    self.pending = 0xC0000005 if "UNMAPPED" in str(exc) else 0xC000001D
            if self.stop_reason:
                break
            if self.pending is None:
                self._limit("its time limit or instruction cap")
                break
            if not self._raise(self.pending):
                break

    def _limit(self, what: str) -> None:
        self.stop_reason = what
        self.hit_limit = True

    def _raise(self, code: int) -> bool:
        """Call the first SEH handler with an EXCEPTION_RECORD and a CONTEXT (False: none)."""
        self.exceptions += 1
        if self.exceptions > MAX_EXCEPTIONS:
            self._limit(f"{MAX_EXCEPTIONS} exceptions")
            return False
        uc = self.uc
        try:
            (record,) = struct.unpack("<I", uc.mem_read(TEB, 4))
            handler = struct.unpack("<I", uc.mem_read(record + 4, 4))[0]
        except UcError:
            record = 0xFFFFFFFF
        if record in (0xFFFFFFFF, FINAL_RECORD):
            self.stop_reason = f"exception {code:#x} with no handler"
            return False
        eip = uc.reg_read(UC_X86_REG_EIP)
        esp = uc.reg_read(UC_X86_REG_ESP)
        context = bytearray(_CONTEXT_SIZE)
        struct.pack_into("<I", context, 0, 0x1003F)
        for i, reg in enumerate(_REGS):
            value = 0x1B if reg is None else uc.reg_read(reg)
            struct.pack_into("<I", context, 0x9C + 4 * i, value)
        struct.pack_into("<I", context, 0xC8, 0x23)
        ctx_at = (esp - _CONTEXT_SIZE - 0x100) & ~0xF
        rec_at = ctx_at - 0x60
        frame = rec_at - 0x14
        try:
            uc.mem_write(ctx_at, bytes(context))
            uc.mem_write(rec_at, struct.pack("<IIII", code, 0, 0, eip) + bytes(0x40))
            uc.mem_write(frame, struct.pack("<IIIII", SEH_RETURN, rec_at, record, ctx_at, 0))
        except UcError:
            self.stop_reason = f"exception {code:#x} with no usable stack"
            return False
        uc.reg_write(UC_X86_REG_ESP, frame)
        uc.reg_write(UC_X86_REG_EIP, handler)
        return True

    def _seh_return(self) -> None:
        uc = self.uc
        esp = uc.reg_read(UC_X86_REG_ESP)
        if uc.reg_read(UC_X86_REG_EAX) != 0:  # not ExceptionContinueExecution
            self._stop("an exception handler declined")
            return
        try:
            ctx_at = struct.unpack("<I", uc.mem_read(esp + 8, 4))[0]
            context = bytes(uc.mem_read(ctx_at, _CONTEXT_SIZE))
        except UcError:
            self._stop("an exception handler broke its context")
            return
        for i, reg in enumerate(_REGS):
            if reg is not None:
                uc.reg_write(reg, struct.unpack_from("<I", context, 0x9C + 4 * i)[0])

    def dump(self, out: str) -> bool:
        """Write the image to ``out``, the written allocations to ``out-alloc-<address>``
        and the zip archives found in either to ``out-zip-<n>``; True when anything in them
        was written by the stub."""
        image = bytes(self.uc.mem_read(self.image.base, self.image.size))
        changed = image != self.initial
        oep = next((a for a in reversed(self.entered) if self.image.contains(a)), None)
        blobs = [(out, as_file(self.image, image, oep))]
        for address, size in self.proc.allocations:
            block = bytes(self.uc.mem_read(address, size)).rstrip(b"\x00")
            if block:
                blobs.append((f"{out}-alloc-{address:08x}", block))
                changed = True
        if not changed:
            return False
        zips = 0
        for _path, blob in list(blobs):
            for archive in carve_zips(blob):
                if zips < MAX_ZIPS:
                    zips += 1
                    blobs.append((f"{out}-zip-{zips}", archive))
        for path, blob in blobs:
            _write(path, blob)
        return True


def _write(path: str, data: bytes) -> None:
    """Write ``data``; past the size cap the parent set (prlimit's file size, one byte over
    max-file-size), what was written stays: the parent reports that member too large."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno != errno.EFBIG:
            raise
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    """Exit 0 with one line on standard output: ``unpacked: <why it stopped>``, ``limit:
    <which>`` (stopped by a limit; what was unpacked so far is written) or ``nothing: <why>``.
    Any other exit status is a failure of the emulator: nothing it wrote is to be read."""
    if len(argv) not in (3, 4):
        return 2
    src, out = argv[1], argv[2]
    gc.freeze()  # the modules' objects: never traversed by this short life's collections
    try:
        seconds = max(0.5, float(argv[3])) if len(argv) == 4 else DEFAULT_SECONDS
        with open(src, "rb") as fh:
            data = fh.read()
        try:
            emulation = Emulation(load(data), seconds, data)
        except (ContainerError, Stop) as exc:
            print(f"nothing: {exc}")
            return 0
        emulation.run()
        wrote = emulation.dump(out)
    except Exception as exc:  # a bug or an emulator failure: one line, no traceback
        print(f"emulator failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    if emulation.hit_limit:
        print(f"limit: {emulation.stop_reason}")
    elif wrote:
        print(f"unpacked: {emulation.stop_reason}")
    else:
        print(f"nothing: {emulation.stop_reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
