"""Process supervision: each run in its own worker process (and process group), its progress events
relayed, stopped as a whole on a timeout, Ctrl-C, SIGTERM or SIGHUP."""
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

from recbole_blairclip.benchmark.worker import EVENT_PREFIX


class BenchmarkInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived during a benchmark (handled like Ctrl-C: the run is stopped, recorded
    as interrupted, and the next run of the same command resumes)."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stop_signals():
    """While a benchmark runs, SIGTERM and SIGHUP raise :class:`BenchmarkInterrupted` (once) in the main
    thread; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:  # a second signal must not cut the clean-up short
            fired.append(signum)
            raise BenchmarkInterrupted(signum)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def stop_group(proc, grace=10.0):
    """Stop the worker and everything it started (its own process group): SIGTERM, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is left of the group (the worker's own children included)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def clean_checkpoints(spec):
    """Remove the checkpoints an interrupted run left in its own folder."""
    if "checkpoint_dir" in spec["config"]:
        return  # a checkpoint folder the user chose may hold other runs' files
    saved = os.path.join(spec["run_dir"], "saved")
    if os.path.isdir(saved):
        shutil.rmtree(saved, ignore_errors=True)


def run_worker(spec_path, log_path, progress, timeout=None):
    """Start the worker for one spec; relay its progress events; return (exit status, timed out)."""
    open(log_path, "w").close()
    with open(log_path, "a", encoding="utf-8") as log:  # append mode: parent and child never overwrite
        proc = subprocess.Popen(
            [sys.executable, "-m", "recbole_blairclip.benchmark.worker", spec_path],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(),
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group: stopped as a whole, never orphaned
        )
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout if timeout else None
        timed_out = False
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        timed_out = True
                        stop_group(proc, grace=0)
                        break
                    continue
                if line is None:
                    break
                if line.startswith(EVENT_PREFIX):
                    try:
                        progress.event(json.loads(line[len(EVENT_PREFIX):]))
                    except ValueError:
                        log.write(line)
                else:
                    log.write(line)
                    log.flush()
            returncode = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP: stop the run, keep what is finished
            stop_group(proc)
            raise
    return returncode, timed_out


def subprocess_env():
    """The worker sees the same modules as this process (source checkouts, test folders)."""
    env = dict(os.environ)
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    paths = [p for p in dict.fromkeys(paths) if os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _log_tail(path, lines=3):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            tail = [line.rstrip() for line in f.readlines()[-lines:] if line.strip()]
    except OSError:
        return ""
    return " | ".join(tail)


def failure_text(returncode, timed_out, timeout, log_path):
    """Why a worker left no result: its timeout, the signal that killed it or its exit status, then (unless it
    timed out) the last lines of its log."""
    if timed_out:
        return f"timed out after {timeout}s"
    if returncode < 0:
        why = f"worker killed by signal {-returncode}" + (" (out of memory?)" if returncode == -9 else "")
    else:
        why = f"worker exited with status {returncode}"
    tail = _log_tail(log_path)
    return why + (f": {tail}" if tail else "")
