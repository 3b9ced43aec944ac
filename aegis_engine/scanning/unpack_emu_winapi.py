"""The Windows a packer's stub sees under emulation (``emulate_child``): stub DLLs with export
tables, a TEB/PEB with a loader module list, and the few APIs an unpacking stub calls.

Pure Python (no emulator import): it works on a :class:`Memory` the emulator provides. Every
API address lies in :data:`DLL_AREA`; calling one the table does not know ends the emulation
(the unpacked program has started: its first call is not a loader's).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

DLL_AREA = 0x70000000
DLL_SPAN = 0x10000
"""Each stub DLL gets this much address space: headers, export table, then one 16-byte slot
per function."""
MAX_DLLS = 64
MAX_SLOTS = (DLL_SPAN - 0x4000) // 16
SLOTS_AT = 0x4000
HEAP_AREA = 0x60000000
HEAP_END = HEAP_AREA + 0x4000000
"""At most 64 MiB of emulated allocations."""
STACK_TOP = 0x7F100000
STACK_SIZE = 0x100000
TEB = 0x7FFDE000
PEB = 0x7FFDF000
LDR = 0x7FFD0000
"""PEB_LDR_DATA and the module entries (one page)."""
SEH_RETURN = 0x70FFF000
"""Where an exception handler called by the emulator returns to."""
PID, TID = 0x1000, 0x1004

_KERNEL32 = """
LoadLibraryA LoadLibraryW LoadLibraryExA LoadLibraryExW GetModuleHandleA GetModuleHandleW
GetProcAddress VirtualAlloc VirtualFree VirtualProtect VirtualQuery ExitProcess ExitThread
GetTickCount IsDebuggerPresent GetVersion GetVersionExA Sleep SleepEx
FlushInstructionCache GetCurrentProcess GetCurrentProcessId GetCurrentThreadId CloseHandle
GetLastError SetLastError GetModuleFileNameA GetModuleFileNameW GetCommandLineA
GetCommandLineW GetStartupInfoA GlobalAlloc GlobalFree LocalAlloc LocalFree HeapCreate
HeapAlloc HeapFree HeapReAlloc GetProcessHeap CreateFileA CreateFileW ReadFile WriteFile
GetFileSize SetFilePointer CreateFileMappingA MapViewOfFile UnmapViewOfFile CreateThread
ResumeThread SuspendThread WaitForSingleObject OpenProcess TerminateProcess
CreateToolhelp32Snapshot Process32First Process32Next Module32First Module32Next
CheckRemoteDebuggerPresent OutputDebugStringA SetUnhandledExceptionFilter
UnhandledExceptionFilter RaiseException RtlUnwind GetSystemTime GetLocalTime
GetSystemTimeAsFileTime QueryPerformanceCounter GetSystemDirectoryA GetWindowsDirectoryA
GetTempPathA GetFileAttributesA GetEnvironmentVariableA MultiByteToWideChar
WideCharToMultiByte lstrlenA lstrcpyA lstrcatA lstrcmpA lstrcmpiA
InitializeCriticalSection EnterCriticalSection LeaveCriticalSection DeleteCriticalSection
TlsAlloc TlsGetValue TlsSetValue TlsFree GetStdHandle GetFileType SetErrorMode GetACP
GetSystemInfo IsBadReadPtr IsBadWritePtr DeviceIoControl CreateMutexA OpenMutexA
ReleaseMutex CreateEventA SetEvent
""".split()  # noqa: SIM905 - a name list
_EXPORTS = {
    "kernel32.dll": _KERNEL32,
    "ntdll.dll": ["RtlDecompressBuffer", "NtQueryInformationProcess", "ZwQueryInformationProcess"],
}


class Memory(Protocol):
    def read(self, address: int, size: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...

    def map(self, address: int, size: int) -> None: ...


class Stop(Exception):
    """Ends the emulation: the reason is its message."""


@dataclass
class Dll:
    name: str
    base: int
    slots: list[str] = field(default_factory=list)


@dataclass
class Process:
    """The emulated process's Windows side: modules, API slots, heap."""

    memory: Memory
    image_base: int
    image_size: int
    dlls: dict[str, Dll] = field(default_factory=dict)
    heap_next: int = HEAP_AREA
    allocations: list[tuple[int, int]] = field(default_factory=list)
    last_error: int = 0
    file_data: bytes = b""
    """The packed file itself, which a stub may open by its own name (a checksum)."""
    file_pos: int = 0

    def module(self, name: str) -> Dll:
        """The stub DLL ``name`` (made on first use)."""
        key = name.lower().rsplit("\\", 1)[-1]
        if not key.endswith((".dll", ".drv", ".exe", ".ocx", ".sys")):
            key += ".dll"
        dll = self.dlls.get(key)
        if dll is None:
            if len(self.dlls) >= MAX_DLLS:
                raise Stop("too many modules loaded")
            dll = Dll(key, DLL_AREA + DLL_SPAN * len(self.dlls))
            self.dlls[key] = dll
            self.memory.map(dll.base, DLL_SPAN)
            for export in _EXPORTS.get(key, []):
                self._slot(dll, export)
            self.memory.write(dll.base, _dll_image(dll))
        return dll

    def _slot(self, dll: Dll, name: str) -> int:
        if name in dll.slots:
            return dll.base + SLOTS_AT + 16 * dll.slots.index(name)
        if len(dll.slots) >= MAX_SLOTS:
            raise Stop(f"too many functions asked of {dll.name}")
        dll.slots.append(name)
        address = dll.base + SLOTS_AT + 16 * (len(dll.slots) - 1)
        self.memory.write(address, b"\xc3")
        return address

    def proc_address(self, dll_name: str, name: str) -> int:
        return self._slot(self.module(dll_name), name)

    def api_at(self, address: int) -> tuple[str, str] | None:
        """(dll, function) of an API slot address, or None."""
        index = (address - DLL_AREA) // DLL_SPAN
        for dll in self.dlls.values():
            if dll.base == DLL_AREA + DLL_SPAN * index:
                slot = (address - dll.base - SLOTS_AT) // 16
                if 0 <= slot < len(dll.slots) and (address - dll.base - SLOTS_AT) % 16 == 0:
                    return dll.name, dll.slots[slot]
        return None

    def handle_of(self, address: int) -> Dll | None:
        for dll in self.dlls.values():
            if dll.base == address:
                return dll
        return None

    def alloc(self, size: int) -> int:
        size = (max(size, 1) + 0xFFF) & ~0xFFF
        if self.heap_next + size > HEAP_END:
            raise Stop("emulated allocations are over the limit")
        address = self.heap_next
        self.memory.map(address, size)
        self.allocations.append((address, size))
        self.heap_next += size
        return address

    def resolve_imports(self, imports: list[tuple[str, list[tuple[int, str]]]]) -> None:
        """Fill the image's import address table as the loader would."""
        for dll_name, names in imports:
            for slot, name in names:
                address = self.proc_address(dll_name, name)
                self.memory.write(self.image_base + slot, struct.pack("<I", address))

    def setup_process(self) -> None:
        """TEB, PEB and the loader's module list (the image, ntdll, kernel32)."""
        for area, size in ((TEB, 0x2000), (LDR, 0x1000)):
            self.memory.map(area, size)
        self.memory.map(STACK_TOP - STACK_SIZE, STACK_SIZE)
        teb = struct.pack("<IIIIII", 0xFFFFFFFF, STACK_TOP, STACK_TOP - STACK_SIZE, 0, 0, 0)
        teb += struct.pack("<IIIIIII", TEB, 0, PID, TID, 0, 0, PEB)
        self.memory.write(TEB, teb)
        peb = struct.pack("<BBBBIII", 0, 0, 0, 0, 0xFFFFFFFF, self.image_base, LDR)
        self.memory.write(PEB, peb)
        modules = [("image.exe", self.image_base, self.image_size)]
        for name in ("ntdll.dll", "kernel32.dll"):
            dll = self.module(name)
            modules.append((name, dll.base, DLL_SPAN))
        self.memory.write(LDR, _ldr(modules))


def _ldr(modules: list[tuple[str, int, int]]) -> bytes:
    """PEB_LDR_DATA followed by one LDR_DATA_TABLE_ENTRY (0x50 bytes) per module and their
    names: three circular lists (load order, memory order, initialisation order; the image
    is not in the last, as on Windows)."""
    page = bytearray(0x1000)
    entry_at = [LDR + 0x40 + 0x60 * i for i in range(len(modules))]
    names_at = LDR + 0x40 + 0x60 * len(modules)
    struct.pack_into("<II", page, 0, 0x30, 1)
    chains = [(0x0C, 0x00, entry_at), (0x14, 0x08, entry_at), (0x1C, 0x10, entry_at[1:])]
    for head_off, link_off, members in chains:
        head = LDR + head_off
        nodes = [head] + [e + link_off for e in members]
        for i, node in enumerate(nodes):
            nxt = nodes[(i + 1) % len(nodes)]
            prv = nodes[i - 1]
            struct.pack_into("<II", page, node - LDR, nxt, prv)
    cursor = names_at
    for (name, base, size), at in zip(modules, entry_at, strict=True):
        wide = name.encode("utf-16-le") + b"\x00\x00"
        full = ("C:\\Windows\\system32\\" + name).encode("utf-16-le") + b"\x00\x00"
        struct.pack_into("<III", page, at - LDR + 0x18, base, base + 0x1000, size)
        struct.pack_into("<HHI", page, at - LDR + 0x24, len(full) - 2, len(full), cursor)
        page[cursor - LDR : cursor - LDR + len(full)] = full
        cursor += len(full)
        struct.pack_into("<HHI", page, at - LDR + 0x2C, len(wide) - 2, len(wide), cursor)
        page[cursor - LDR : cursor - LDR + len(wide)] = wide
        cursor += len(wide)
    return bytes(page)


def _dll_image(dll: Dll) -> bytes:
    """MZ and PE headers and an export directory naming ``dll.slots`` (whose code is the
    slot area), enough for a stub that walks the exports itself."""
    names = sorted(range(len(dll.slots)), key=lambda i: dll.slots[i].encode())
    head = bytearray(SLOTS_AT)
    head[0:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\x00\x00"
    struct.pack_into("<HHIIIHH", head, 0x44, 0x14C, 0, 0, 0, 0, 0xE0, 0x2102)
    opt = 0x58
    struct.pack_into("<HBB", head, opt, 0x10B, 1, 0)
    struct.pack_into("<III", head, opt + 28, dll.base, 0x1000, 0x200)
    struct.pack_into("<II", head, opt + 56, DLL_SPAN, 0x400)
    struct.pack_into("<I", head, opt + 92, 16)
    exports = 0x200
    count = len(dll.slots)
    functions = exports + 0x28
    name_ptrs = functions + 4 * count
    ordinals = name_ptrs + 4 * count
    strings = ordinals + 2 * count
    dll_name = strings
    strings += len(dll.name) + 1
    struct.pack_into("<II", head, opt + 96, exports, strings - exports)
    struct.pack_into(
        "<IIHHIIIIIII", head, exports, 0, 0, 0, 0, dll_name, 1, count, count,
        functions, name_ptrs, ordinals,
    )  # fmt: skip
    head[dll_name : dll_name + len(dll.name)] = dll.name.encode()
    for i in range(count):
        struct.pack_into("<I", head, functions + 4 * i, SLOTS_AT + 16 * i)
    for k, i in enumerate(names):
        raw = dll.slots[i].encode()
        if strings + len(raw) + 1 > SLOTS_AT:
            break
        struct.pack_into("<I", head, name_ptrs + 4 * k, strings)
        struct.pack_into("<H", head, ordinals + 2 * k, i)
        head[strings : strings + len(raw)] = raw
        strings += len(raw) + 1
    return bytes(head)


def read_cstring(memory: Memory, address: int, wide: bool = False, limit: int = 260) -> str:
    out = bytearray()
    step = 2 if wide else 1
    for at in range(address, address + limit * step, 64):
        try:
            chunk = memory.read(at, 64)
        except Exception:  # the emulator's own error type: the string ends there
            break
        if wide:
            chunk = chunk[::2]
        end = chunk.find(b"\x00")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
    return out[:limit].decode("latin-1")


Handler = Callable[[Process, list[int]], int]


def _load_library(wide: bool) -> Handler:
    def run(proc: Process, args: list[int]) -> int:
        name = read_cstring(proc.memory, args[0], wide)
        return proc.module(name).base if name else 0

    return run


def _module_handle(wide: bool) -> Handler:
    def run(proc: Process, args: list[int]) -> int:
        if not args[0]:
            return proc.image_base
        name = read_cstring(proc.memory, args[0], wide)
        return proc.module(name).base if name else 0

    return run


def _get_proc_address(proc: Process, args: list[int]) -> int:
    module, name_ptr = args
    dll = proc.handle_of(module)
    if dll is None:
        return 0
    name = f"#{name_ptr}" if name_ptr < 0x10000 else read_cstring(proc.memory, name_ptr)
    return proc.proc_address(dll.name, name) if name else 0


def _virtual_alloc(proc: Process, args: list[int]) -> int:
    address, size = args[0], args[1]
    if address and any(a <= address < a + s for a, s in proc.allocations):
        return address & ~0xFFF
    if address and proc.image_base <= address < proc.image_base + proc.image_size:
        return address & ~0xFFF
    return proc.alloc(size)


def _virtual_protect(proc: Process, args: list[int]) -> int:
    if args[3]:
        proc.memory.write(args[3], struct.pack("<I", 0x40))
    return 1


def _exit(proc: Process, args: list[int]) -> int:
    raise Stop("the program exited")


def _constant(value: int) -> Handler:
    return lambda proc, args: value


def _heap_alloc(size_arg: int) -> Handler:
    return lambda proc, args: proc.alloc(args[size_arg])


SELF_PATH = "C:\\Program Files\\sample.exe"
SELF_HANDLE = 0x7C


def _module_file_name(proc: Process, args: list[int]) -> int:
    if args[0] not in (0, proc.image_base) or args[2] <= len(SELF_PATH):
        return 0
    proc.memory.write(args[1], SELF_PATH.encode() + b"\x00")
    return len(SELF_PATH)


def _create_file(proc: Process, args: list[int]) -> int:
    if read_cstring(proc.memory, args[0]).lower() != SELF_PATH.lower():
        return 0xFFFFFFFF  # INVALID_HANDLE_VALUE: no other file opens
    proc.file_pos = 0
    return SELF_HANDLE


def _read_file(proc: Process, args: list[int]) -> int:
    handle, buffer, size, done = args[:4]
    if handle != SELF_HANDLE:
        return 0
    chunk = proc.file_data[proc.file_pos : proc.file_pos + min(size, 0x1000000)]
    proc.memory.write(buffer, chunk)
    proc.file_pos += len(chunk)
    if done:
        proc.memory.write(done, struct.pack("<I", len(chunk)))
    return 1


def _file_size(proc: Process, args: list[int]) -> int:
    return len(proc.file_data) if args[0] == SELF_HANDLE else 0xFFFFFFFF


def _set_file_pointer(proc: Process, args: list[int]) -> int:
    if args[0] != SELF_HANDLE:
        return 0xFFFFFFFF
    distance = args[1] - (1 << 32) if args[1] & 0x80000000 else args[1]
    origin = (0, proc.file_pos, len(proc.file_data))[min(args[3], 2)]
    proc.file_pos = max(0, origin + distance)
    return proc.file_pos


def _version_ex(proc: Process, args: list[int]) -> int:
    proc.memory.write(args[0] + 4, struct.pack("<IIII", 5, 1, 2600, 2))
    return 1


APIS: dict[str, tuple[int, Handler]] = {
    "LoadLibraryA": (1, _load_library(False)),
    "LoadLibraryW": (1, _load_library(True)),
    "LoadLibraryExA": (3, _load_library(False)),
    "LoadLibraryExW": (3, _load_library(True)),
    "GetModuleHandleA": (1, _module_handle(False)),
    "GetModuleHandleW": (1, _module_handle(True)),
    "GetProcAddress": (2, _get_proc_address),
    "VirtualAlloc": (4, _virtual_alloc),
    "VirtualFree": (3, _constant(1)),
    "VirtualProtect": (4, _virtual_protect),
    "FlushInstructionCache": (3, _constant(1)),
    "ExitProcess": (1, _exit),
    "ExitThread": (1, _exit),
    "GetTickCount": (0, _constant(0x00100000)),
    "IsDebuggerPresent": (0, _constant(0)),
    "GetVersion": (0, _constant(0x0A280105)),
    "GetVersionExA": (1, _version_ex),
    "Sleep": (1, _constant(0)),
    "GetCurrentProcess": (0, _constant(0xFFFFFFFF)),
    "GetCurrentProcessId": (0, _constant(PID)),
    "GetCurrentThreadId": (0, _constant(TID)),
    "CloseHandle": (1, _constant(1)),
    "GetLastError": (0, lambda proc, args: proc.last_error),
    "SetLastError": (1, _constant(0)),
    "GlobalAlloc": (2, _heap_alloc(1)),
    "LocalAlloc": (2, _heap_alloc(1)),
    "GlobalFree": (1, _constant(0)),
    "LocalFree": (1, _constant(0)),
    "GetProcessHeap": (0, _constant(0x00150000)),
    "HeapCreate": (3, _constant(0x00150000)),
    "HeapAlloc": (3, _heap_alloc(2)),
    "HeapFree": (3, _constant(1)),
    "GetModuleFileNameA": (3, _module_file_name),
    "CreateFileA": (7, _create_file),
    "ReadFile": (5, _read_file),
    "GetFileSize": (2, _file_size),
    "SetFilePointer": (4, _set_file_pointer),
    "CreateThread": (6, _constant(0x88)),  # a handle; the thread itself does not run
    "ResumeThread": (1, _constant(1)),
    "WaitForSingleObject": (2, _constant(0)),
    "OpenProcess": (3, _constant(0)),
}
"""The APIs an unpacking stub may call: argument count (stdcall) and what it does."""


def call(proc: Process, name: str, read_args: Callable[[int], list[int]]) -> tuple[int, int]:
    """Run the API ``name``: (return value, argument count); Stop for one not known."""
    known = APIS.get(name)
    if known is None:
        raise Stop(f"the program called {name}")
    count, handler = known
    return handler(proc, read_args(count)) & 0xFFFFFFFF, count
