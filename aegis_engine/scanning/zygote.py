"""The preload server: loads the detectors' content once and forks scan workers from it.

Without it every worker loads its own copy of the content (compiled YARA rules, hash lists,
the ML model's session), paying the memory and the start-up time once per worker. The
server is started in a fresh interpreter (``spawn``: never a fork of the caller, which may
be a Qt process; the caller's ``__main__`` hidden), loads the content, freezes the garbage
collector's view of it (``gc.freeze``, so a collection in a worker does not write to every
shared page) and then, on request, forks a worker that shares all of it copy-on-write. It
never scans. The ML model's session (onnxruntime, 30-40 MB) is made in the server only once
a worker of its pool needed it (``model=True`` from then on, see ``WorkerPool.model_wanted``):
a scan that meets no PE file, like most on-access scanning, never pays for it; a worker
forked before that makes its own on its first PE file, as every worker did before.
onnxruntime and OpenBLAS then keep an idle thread each in the server; a worker forked from
it runs the model fine (tests/test_worker_preload.py).

The parent holds, per worker, a connection (sent to the server as a file descriptor) and a
pidfd (sent back), so it can wait for, kill and tell the end of a worker that is not its
child without any risk of a reused pid. The server reaps its workers and sends their exit
status back. One server per content version and limits (one per :class:`WorkerPool`). Like
a worker, a server with no worker left for ``WorkerConfig.idle_timeout`` exits (the next
scan starts another); a new content version retires the pool, whose server stops forking
and exits once its last worker has; a server that dies is replaced at the next worker
start, while the workers it had forked go on with their files.

Every process here also holds a *lifeline*: the read end of a pipe whose write end only the
engine's process holds. When the engine's process ends, however it ends, the pipe reads
EOF and the server and every worker exit.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..errors import ScanError
from .mp_start import main_module_hidden, untracked_spawn_context
from .worker_main import Outbox, forked_worker, limit_memory, load_content, warm_model

if TYPE_CHECKING:
    from .worker_pool import WorkerConfig

REPLY_TIMEOUT = 30.0
"""Seconds the server may take to answer a fork request (it answers at once when healthy)."""
EXIT_STATUS_WAIT = 5.0
"""Seconds to wait for the server's word on how a worker that has ended ended."""


def supported() -> bool:
    """Whether workers can be forked from a preload server here (Linux: pidfds)."""
    return hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def server_context() -> multiprocessing.context.BaseContext:
    """How the server starts: ``spawn``, a fresh interpreter (never a fork of the caller).
    No fork server is needed (one process less, ~13 MB PSS); the server is started once per
    content version and forks the workers itself. Nor a resource tracker (another ~8 MB
    PSS for the caller's lifetime): nothing here uses named semaphores or shared memory."""
    return untracked_spawn_context()


class PreloadServer:
    """The parent's handle on one preload server. Thread-safe."""

    def __init__(self, ctx: multiprocessing.context.BaseContext, config: WorkerConfig) -> None:
        self._lock = threading.Lock()
        self._exits: dict[int, int | None] = {}
        self._dead = False
        self._closed = False
        self._pid = 0
        self.conn, child = ctx.Pipe(duplex=True)
        lifeline_child, self._lifeline = ctx.Pipe(duplex=False)
        self.process: Any = ctx.Process(  # type: ignore[attr-defined]
            target=server_main,
            args=(child, lifeline_child, config),
            name="aegis-scan-preload",
            daemon=True,
        )
        try:
            with main_module_hidden():
                self.process.start()
            self._pid = int(self.process.pid)
        except BaseException:
            self.close()
            raise
        finally:
            child.close()
            lifeline_child.close()
        try:
            self._await_ready(config.start_timeout)
        except BaseException:
            self.close()
            raise

    def _await_ready(self, timeout: float) -> None:
        try:
            if not self.conn.poll(timeout):
                raise ScanError("the scan workers' preload server did not start in time")
            message = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            code = self.process.exitcode
            raise ScanError(f"the scan workers' preload server exited (status {code})") from None
        if message[0] != "ready":
            raise ScanError(str(message[1]))

    @property
    def alive(self) -> bool:
        return not self._dead and bool(self.process.is_alive())

    @property
    def pid(self) -> int:
        return self._pid

    def fork(
        self, tmpdir: str, model: bool = True, idle_timeout: float | None = None
    ) -> tuple[Connection, ForkedProcess]:
        """A new worker: the parent's end of its connection and its process handle.
        ``model``: have the ML model's session made in the server first (shared by this and
        later workers); otherwise a worker makes its own on its first PE file.
        ``idle_timeout``: the worker exits after that long with nothing to do, and the
        server that long after its last worker (None: ``WorkerConfig.idle_timeout``)."""
        mine, theirs = self._pipe()
        try:
            with self._lock:
                try:
                    self.conn.send(("fork", tmpdir, model, idle_timeout))
                    reduction.send_handle(self.conn, theirs.fileno(), self.pid)
                    theirs.close()
                    while True:
                        if not self.conn.poll(REPLY_TIMEOUT):
                            self._dead = True  # replaced at the next start
                            raise ScanError("the scan workers' preload server does not answer")
                        message = self.conn.recv()
                        if message[0] == "exit":
                            self._exits[message[1]] = message[2]
                        elif message[0] == "forked":
                            pidfd = reduction.recv_handle(self.conn)
                            return mine, ForkedProcess(self, message[1], pidfd)
                        else:
                            raise ScanError(f"a scan worker could not start: {message[1]}")
                except (EOFError, OSError) as exc:
                    self._dead = True
                    raise ScanError(f"the scan workers' preload server is gone ({exc})") from None
        except BaseException:
            theirs.close()
            mine.close()
            raise

    @staticmethod
    def _pipe() -> tuple[Connection, Connection]:
        from multiprocessing import Pipe

        return Pipe(duplex=True)

    def exit_status(self, pid: int, timeout: float = EXIT_STATUS_WAIT) -> int | None:
        """How worker ``pid`` (which has ended) ended, as ``Process.exitcode`` puts it; None
        when the server cannot tell any more (it is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if pid in self._exits:
                    return self._exits.pop(pid)
                left = deadline - time.monotonic()
                if self._dead or left <= 0:
                    return None
                try:
                    if self.conn.poll(min(left, 0.2)):
                        message = self.conn.recv()
                        if message[0] == "exit":
                            self._exits[message[1]] = message[2]
                except (EOFError, OSError):
                    self._dead = True

    def stop(self) -> None:
        """Fork no more: the server exits once the workers it forked have (non-blocking)."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the server now (its workers, if any are left, exit with the lifeline)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, ValueError):
            self._lifeline.close()
        with self._lock:
            self._dead = True
            with contextlib.suppress(OSError, ValueError):
                self.conn.close()
        if self._pid:
            self.process.join(timeout)
            with contextlib.suppress(OSError, ValueError):
                self.process.kill()
            self.process.join(5)
            with contextlib.suppress(ValueError, AttributeError):
                self.process.close()


class ForkedProcess:
    """A worker forked by the preload server, seen from the engine's process: the part of
    ``multiprocessing.Process`` that the pool uses, through a pidfd."""

    def __init__(self, server: PreloadServer, pid: int, pidfd: int) -> None:
        self._server = server
        self.pid = pid
        self.sentinel = pidfd
        self.exitcode: int | None = None
        self._ended = False

    def is_alive(self) -> bool:
        return not self._ended and not wait([self.sentinel], 0)

    def join(self, timeout: float | None = None) -> None:
        if self._ended or self.sentinel < 0:
            return
        if wait([self.sentinel], timeout):
            self._ended = True
            self.exitcode = self._server.exit_status(self.pid)

    def kill(self) -> None:
        if not self._ended and self.sentinel >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.sentinel, signal.SIGKILL)

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


# -- inside the server ----------------------------------------------------------------------


def server_main(conn: Connection, lifeline: Connection, config: WorkerConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    limit_memory(config.memory_limit)
    outbox = Outbox()
    try:
        detectors = load_content(config, outbox)
    except Exception as exc:
        conn.send(("fatal", f"detectors could not be loaded: {exc}"))
        return
    freeze()
    conn.send(("ready",))
    model = False
    children: dict[int, int] = {}  # pidfd -> pid
    stopping = False
    idle = config.idle_timeout  # the last worker's: on-access workers leave sooner
    while not (stopping and not children):
        # With no worker left for ``idle`` s, leave too (the next scan starts another).
        ready = wait([conn, lifeline, *children], None if children else idle)
        if not ready:
            return
        for handle in ready:
            if isinstance(handle, int):
                pid = children.pop(handle)
                os.close(handle)
                _, status = os.waitpid(pid, 0)
                stopping = not _send(conn, ("exit", pid, os.waitstatus_to_exitcode(status)))
        if lifeline in ready:
            return  # the engine's process is gone (its workers leave too)
        if conn not in ready:
            continue
        try:
            message = conn.recv()
        except (EOFError, OSError):
            stopping = True
            continue
        if message[0] == "stop":
            stopping = True
        elif message[0] == "fork":
            fd = reduction.recv_handle(conn)
            if message[2] and not model:
                warm_model(detectors)
                freeze()
                model = True
            if message[3] is not None:
                idle = message[3]
            worker_config = replace(config, idle_timeout=idle)
            _fork_worker(
                conn, lifeline, fd, message[1], worker_config, detectors, outbox, children, model
            )


def defer_model(detectors: list[Any]) -> None:
    """In a worker forked before the server made the ML model's session: never make one of
    its own. On its first PE file it says so, hands the file back and leaves (``ModelWanted``
    in ``worker_main``); the pool then has the server make the session once and forks
    workers that share it."""
    from ..ml.detector import MLDetector

    for det in detectors:
        if isinstance(det, MLDetector):
            det.defer_session = True


def freeze() -> None:
    """What is loaded now stays put: no collection in a worker writes to those pages."""
    gc.collect()
    gc.freeze()


def _send(conn: Connection, message: tuple[object, ...]) -> bool:
    try:
        conn.send(message)
    except (OSError, ValueError):
        return False
    return True


def _fork_worker(
    conn: Connection,
    lifeline: Connection,
    fd: int,
    tmpdir: str,
    config: WorkerConfig,
    detectors: list[Any],
    outbox: Outbox,
    children: dict[int, int],
    model: bool,
) -> None:
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        _send(conn, ("failed", f"fork: {exc.strerror or exc}"))
        return
    if pid == 0:  # the worker
        code = 0
        try:
            conn.close()
            for pidfd in children:
                os.close(pidfd)
            if not model:
                defer_model(detectors)
            forked_worker(Connection(fd), config, detectors, outbox, tmpdir, lifeline)
        except BaseException:
            code = 1
            with contextlib.suppress(Exception):
                traceback.print_exc(file=sys.stderr)
        finally:
            os._exit(code)
    os.close(fd)
    pidfd = os.pidfd_open(pid)
    children[pidfd] = pid
    if _send(conn, ("forked", pid)):
        with contextlib.suppress(OSError):
            reduction.send_handle(conn, pidfd, os.getppid())
