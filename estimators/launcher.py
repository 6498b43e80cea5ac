"""Run one training job on N local worker processes: what `skflow run CONFIG --workers N` stands on.

`launch_local_workers(target, workers=N)` starts N processes, each with its `TF_CONFIG` naming all of
them on free 127.0.0.1 ports (`{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}`;
worker 0 is the chief), so an Estimator fitted in each trains with `MultiWorkerMirroredStrategy`
(`estimators.distribute`). The target is a command (a list of arguments) or an importable
`"module:function"`, which each process calls after joining the cluster.

- Their output is streamed line by line, prefixed by task (`[worker 0] ...`), and the last lines of each
  are kept for error reports (`log_dir=` keeps whole logs).
- A peer that never comes up would leave the others blocked for ever in the strategy's constructor,
  which ignores SIGTERM: a watchdog SIGKILLs the group after `startup_timeout` seconds and names the
  tasks that never joined (tasks tell it through `signal_startup`, which skflow calls for them).
- When a worker dies (non-zero exit or a signal), the others are stopped (SIGTERM, then SIGKILL after
  `grace_period`) and the whole group restarts on fresh ports, up to `max_restarts` times. A fit with
  `max_steps=N` resumes from the chief's last checkpoint and stops at exactly N. Past the restarts,
  `WorkerFailedError` names the task, its exit code or signal and the tail of its log.
- Non-chief workers get a private `TMPDIR` (their scratch checkpoints go there), deleted at the end
  even when a worker was killed mid-save.

Pure Python and subprocess: no TensorFlow is imported here.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "Attempt",
    "ClusterStartupError",
    "LaunchResult",
    "WorkerFailedError",
    "free_ports",
    "launch_local_workers",
    "local_tf_config",
    "signal_startup",
]

ENV_DIR = "SKFLOW_LAUNCH_DIR"  # where tasks leave their startup signals
ENV_TASK = "SKFLOW_LAUNCH_TASK"  # this task's name in that directory ("worker-0")
ENV_ATTEMPT = "SKFLOW_LAUNCH_ATTEMPT"  # 0 for the first start of the group, 1 after the first restart...
_TAIL_LINES = 40
_POLL_SECONDS = 0.05


def signal_startup(stage: str) -> None:
    """Tell the launcher that started this process (if one did) that it reached `stage` of joining its
    cluster: "starting" (about to wait for its peers) or "ready" (the cluster is up). No-op otherwise.
    `estimators.cluster_strategy()` calls it; a program that builds its own strategy may too."""
    directory, task = os.environ.get(ENV_DIR), os.environ.get(ENV_TASK)
    if directory and task:
        try:
            with open(os.path.join(directory, f"{task}.{stage}"), "w"):
                pass
        except OSError:
            pass  # the launcher is gone: nobody to tell


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct TCP ports that were free on `host` a moment ago (bound together, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_config(ports: Sequence[int], index: int, host: str = "127.0.0.1") -> str:
    """The `TF_CONFIG` of worker `index` in a cluster of workers on `host`:`ports` (worker 0 is the chief)."""
    return json.dumps(
        {"cluster": {"worker": [f"{host}:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


class WorkerFailedError(RuntimeError):
    """A worker of a launched group failed, and no restart was left.

    Attributes:
        task: "worker 1".
        returncode: its exit status (negative: killed by that signal), or None when it was still running.
        attempt: 0 for the first start of the group, 1 after the first restart, ...
        log_tail: its last lines of output.
    """

    def __init__(self, summary: str, task: str, returncode: int | None, attempt: int, log_tail: str) -> None:
        super().__init__(f"{summary} The last lines of {task}:\n{_indent(log_tail)}")
        self.summary = summary
        self.task, self.returncode, self.attempt, self.log_tail = task, returncode, attempt, log_tail


class ClusterStartupError(WorkerFailedError):
    """The group's cluster did not come up within `startup_timeout` (a peer never joined).

    Attributes:
        missing: the tasks that never reached the cluster startup ("worker 1"); `task` is the first.
        waiting: the tasks that were waiting for them.
    """

    def __init__(self, summary: str, missing: list[str], waiting: list[str], attempt: int, log_tail: str) -> None:
        super().__init__(summary, missing[0] if missing else waiting[0], None, attempt, log_tail)
        self.missing, self.waiting = missing, waiting


@dataclass
class Attempt:
    """One start of the group: its ports, each task's exit status (None: killed by the launcher while
    running), what failed ("" when all exited 0), and how long it ran."""

    number: int
    ports: list[int]
    returncodes: dict[str, int | None] = field(default_factory=dict)
    failure: str = ""
    seconds: float = 0.0


@dataclass
class LaunchResult:
    """What `launch_local_workers` did: every start of the group, and where whole logs went."""

    workers: int
    attempts: list[Attempt]
    log_files: dict[str, str] = field(default_factory=dict)

    @property
    def restarts(self) -> int:
        return len(self.attempts) - 1


def launch_local_workers(
    target: str | Sequence[str],
    workers: int = 2,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    startup_timeout: float | None = 120.0,
    max_restarts: int = 0,
    timeout: float | None = None,
    grace_period: float = 5.0,
    stream: IO[str] | None = None,
    log_dir: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
) -> LaunchResult:
    """Run `target` in `workers` local processes that form one TF_CONFIG cluster; return when all exit 0.

    Args:
        target: a command, as a list of arguments (`["skflow", "run", "job.yaml"]`), run in each process;
            or `"module:function"`, called as `function(*args)` in each process after it joined the cluster
            (`estimators.distribute.main`), so that nothing runs TensorFlow before the strategy exists.
        workers: how many processes. default=2.
        args: more arguments for the command or the function.
        env: environment variables added to this process's for the workers.
        cwd: the workers' working directory. default: this process's.
        startup_timeout: seconds for the cluster to come up once a task started joining it; past that the
            group is SIGKILLed and `ClusterStartupError` names the tasks that never joined. None: wait for
            ever (the strategy's constructor blocks, ignoring SIGTERM, while a peer is missing). default=120.
        max_restarts: how many times the whole group is restarted after a worker dies. default=0.
        timeout: seconds for the whole launch (restarts included); past that the group is killed and
            `TimeoutError` raised. default=None.
        grace_period: seconds between SIGTERM and SIGKILL when the launcher stops workers. default=5.
        stream: where the prefixed output goes. default=sys.stderr.
        log_dir: also write each worker's whole output to `log_dir/worker-<i>.log` (appended across restarts).
        host: the address the workers bind and reach each other on. default="127.0.0.1".

    Returns:
        a `LaunchResult`: every attempt's exit statuses, the number of restarts, the log files.

    Raises:
        WorkerFailedError: a worker exited non-zero or was killed, with no restart left.
        ClusterStartupError: the cluster did not come up within `startup_timeout`, with no restart left.
        TimeoutError: the launch ran past `timeout`.

    Example:
        >>> result = launch_local_workers("my_project.train:main", workers=2, args=["job.yaml"], max_restarts=2)
        >>> result.restarts
        0
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(
            f"Invalid value for argument `workers`. Received: workers={workers!r}. Expected a positive integer."
        )
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(
            f"Invalid value for argument `max_restarts`. Received: max_restarts={max_restarts!r}. "
            "Expected a non-negative integer."
        )
    command = _command(target, args)
    stream = stream if stream is not None else sys.stderr
    out = _Output(stream, log_dir, workers)
    deadline = None if timeout is None else time.monotonic() + timeout
    root = tempfile.mkdtemp(prefix="skflow-launch-")
    attempts: list[Attempt] = []
    try:
        for number in range(max_restarts + 1):
            group = _Group(command, workers, number, root, env, cwd, host, out)
            attempts.append(group.attempt)
            try:
                group.wait(startup_timeout, deadline, grace_period)
                return LaunchResult(workers, attempts, out.files)
            except WorkerFailedError as exc:
                if number == max_restarts:
                    raise
                out.launcher(f"{exc.summary} Restarting the group (restart {number + 1} of {max_restarts}).")
        raise AssertionError("unreachable")
    finally:
        out.close()
        shutil.rmtree(root, ignore_errors=True)


def _command(target: str | Sequence[str], args: Sequence[str]) -> list[str]:
    if isinstance(target, str):
        module, sep, function = target.partition(":")
        if not sep or not module or not function or any(c.isspace() for c in target):
            raise ValueError(
                f"Invalid value for argument `target`. Received: target={target!r}. Expected 'module:function' "
                "or a command as a list of arguments (['python', 'train.py'])."
            )
        # estimators.distribute.main: join the cluster first, then call the function (no TF import here).
        entry = "import sys; from estimators.distribute import main; sys.exit(main())"
        return [sys.executable, "-c", entry, target, *map(str, args)]
    command = [os.fspath(a) for a in target]
    if not command:
        raise ValueError("Invalid value for argument `target`. Received: target=[]. Expected a non-empty command.")
    return [*command, *map(str, args)]


class _Output:
    """Prefixed lines to the stream, whole logs to files, the last lines of each task in memory."""

    def __init__(self, stream: IO[str], log_dir: str | os.PathLike | None, workers: int) -> None:
        self.stream = stream
        self.lock = threading.Lock()
        self.files: dict[str, str] = {}
        self._handles: dict[str, IO[str]] = {}
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            for i in range(workers):
                path = os.path.join(os.fspath(log_dir), f"worker-{i}.log")
                self.files[f"worker {i}"] = path
                self._handles[f"worker {i}"] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def line(self, task: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"[{task}] {text}")
            self.stream.flush()
            handle = self._handles.get(task)
            if handle is not None:
                handle.write(text)
                handle.flush()

    def launcher(self, message: str) -> None:
        with self.lock:
            self.stream.write(f"[launcher] {message}\n")
            self.stream.flush()
            for handle in self._handles.values():
                handle.write(f"--- launcher: {message}\n")
                handle.flush()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()


class _Task:
    """One worker process of one attempt, its output read by a thread."""

    def __init__(self, index: int, command: list[str], env: dict[str, str], cwd: Any, out: _Output) -> None:
        self.index, self.name = index, f"worker {index}"
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.exited_at: float | None = None
        self.proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._reader = threading.Thread(target=self._read, args=(out,), daemon=True)
        self._reader.start()

    def _read(self, out: _Output) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            if not text.endswith("\n"):
                text += "\n"
            self.tail.append(text)
            out.line(self.name, text)
        self.proc.stdout.close()

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.exited_at is None:
            self.exited_at = time.monotonic()
        return code

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # its own session: the command and whatever it started
        except (ProcessLookupError, PermissionError):
            pass

    def finish_output(self) -> str:
        self._reader.join(timeout=5)
        return "".join(self.tail)


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _indent(text: str) -> str:
    return "".join(f"    {line}" for line in text.splitlines(keepends=True)) or "    (no output)\n"


class _Group:
    """One start of the whole group: the processes, their startup signals, and how it ended."""

    def __init__(
        self,
        command: list[str],
        workers: int,
        number: int,
        root: str,
        env: Mapping[str, str] | None,
        cwd: Any,
        host: str,
        out: _Output,
    ) -> None:
        self.out = out
        self.number = number
        self.ports = free_ports(workers, host)
        self.attempt = Attempt(number, self.ports)
        self.signals = os.path.join(root, f"attempt-{number}")
        os.makedirs(self.signals)
        self.started = time.monotonic()
        base = {**os.environ, **(env or {})}
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        base["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, base.get("PYTHONPATH")) if p)
        base["PYTHONUNBUFFERED"] = "1"
        self.tasks: list[_Task] = []
        try:
            for i in range(workers):
                task_env = {
                    **base,
                    "TF_CONFIG": local_tf_config(self.ports, i, host),
                    ENV_DIR: self.signals,
                    ENV_TASK: f"worker-{i}",
                    ENV_ATTEMPT: str(number),
                }
                if i > 0:  # a non-chief's scratch checkpoints: deleted with `root`, even after a SIGKILL
                    scratch = os.path.join(root, f"attempt-{number}-worker-{i}-tmp")
                    os.makedirs(scratch)
                    task_env["TMPDIR"] = scratch
                self.tasks.append(_Task(i, command, task_env, cwd, out))
        except BaseException:
            self.stop(0)
            raise
        out.launcher(
            f"Started {workers} worker(s) on {host} ports {', '.join(map(str, self.ports))}"
            + (f" (restart {number})" if number else "")
            + "."
        )

    def _signalled(self, task: _Task, stage: str) -> bool:
        return os.path.exists(os.path.join(self.signals, f"worker-{task.index}.{stage}"))

    def wait(self, startup_timeout: float | None, deadline: float | None, grace_period: float) -> None:
        """Until every task exits 0; raises (after stopping the others) when one fails."""
        up = False
        try:
            while True:
                codes = [t.poll() for t in self.tasks]
                failed = [t for t, c in zip(self.tasks, codes) if c not in (None, 0)]
                if failed:
                    first = min(failed, key=lambda t: (t.exited_at, t.index))
                    self._fail(first, grace_period)
                if all(c == 0 for c in codes):
                    self._record("")
                    return
                if not up and startup_timeout is not None:
                    up = self._check_startup(codes, startup_timeout, grace_period)
                if deadline is not None and time.monotonic() > deadline:
                    self.stop(grace_period)
                    self._record("timeout")
                    raise TimeoutError(
                        f"The launch ran past its timeout; stopped every worker (attempt {self.number})."
                    )
                time.sleep(_POLL_SECONDS)
        except BaseException:
            self.stop(grace_period)  # KeyboardInterrupt included: never leave workers behind
            raise

    def _check_startup(self, codes: list[int | None], startup_timeout: float, grace_period: float) -> bool:
        """True once the cluster is up (every running task said "ready"); raises past the timeout."""
        running = [t for t, c in zip(self.tasks, codes) if c is None]
        if all(self._signalled(t, "ready") for t in running):
            return True
        joining = [t for t in self.tasks if self._signalled(t, "starting")]
        if not joining or time.monotonic() - self.started < startup_timeout:
            return False  # nothing joins a cluster (not an skflow fit), or still within the bound
        missing = [t for t in running if not self._signalled(t, "starting")]
        waiting = [t for t in running if self._signalled(t, "starting") and not self._signalled(t, "ready")]
        self._kill_now()
        if missing:
            what = (
                f"{', '.join(t.name for t in missing)} never started joining it (no sign of life from its "
                f"TensorFlow startup); {', '.join(t.name for t in waiting) or 'no task'} waited for it"
            )
        else:
            what = f"{', '.join(t.name for t in waiting)} waited for each other (are ports {self.ports} reachable?)"
        tail = (missing or waiting)[0].finish_output()
        summary = (
            f"The cluster did not come up within startup_timeout={startup_timeout:g} s: {what}. Killed every "
            f"worker (SIGKILL; attempt {self.number})."
        )
        self._record(summary)
        raise ClusterStartupError(summary, [t.name for t in missing], [t.name for t in waiting], self.number, tail)

    def _fail(self, task: _Task, grace_period: float) -> None:
        code = task.proc.returncode
        self.stop(grace_period)
        tail = task.finish_output()
        seconds = (task.exited_at or time.monotonic()) - self.started
        summary = (
            f"{task.name.capitalize()} failed ({_describe(code)}) after {seconds:.1f} s (attempt {self.number}); "
            "stopped the other workers."
        )
        self._record(summary)
        raise WorkerFailedError(summary, task.name, code, self.number, tail)

    def _record(self, failure: str) -> None:
        self.attempt.returncodes = {t.name: t.proc.returncode for t in self.tasks}
        self.attempt.failure = failure
        self.attempt.seconds = time.monotonic() - self.started

    def _kill_now(self) -> None:
        for t in self.tasks:
            t.signal_group(signal.SIGKILL)
        for t in self.tasks:
            t.proc.wait()

    def stop(self, grace_period: float) -> None:
        """SIGTERM every task's process group, then SIGKILL what is left after `grace_period` seconds."""
        for t in self.tasks:
            if t.proc.poll() is None:
                t.signal_group(signal.SIGTERM)
        end = time.monotonic() + grace_period
        while time.monotonic() < end and any(t.proc.poll() is None for t in self.tasks):
            time.sleep(_POLL_SECONDS)
        for t in self.tasks:
            t.signal_group(signal.SIGKILL)  # stragglers, and anything a task left in its group
        for t in self.tasks:
            t.proc.wait()
