"""Terminal progress of a benchmark: which run, which epoch, loss, validation score, elapsed time."""
import sys
import time

from recbole_blairclip.benchmark.metric_names import display_name, normalize, ordered
from recbole_blairclip.errors import ConfigError


class Progress:
    """Terminal progress: which run, which epoch, loss, validation score, elapsed time.

    ``mode``: ``bar`` (a tqdm bar per run), ``lines`` (one line per epoch, for logs and CI), ``none``, or
    ``auto`` (bar on a terminal, lines otherwise). Written to standard error.
    """

    def __init__(self, mode="auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ConfigError(f"progress must be auto, bar, lines or none, got {mode!r}")
        self.mode = mode
        self.bar = None

    def say(self, text):
        if self.mode == "none":
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def begin(self, label):
        self.label, self.start, self.epochs, self.metric = label, time.perf_counter(), None, "valid"
        self.loss = None
        self.say(f"{label}: starting")

    def event(self, event):
        kind = event.get("event")
        elapsed = time.perf_counter() - self.start
        if kind == "start":
            self.epochs, self.metric = event.get("epochs"), event.get("valid_metric", "valid")
            if self.mode == "bar":
                from tqdm import tqdm

                self.bar = tqdm(total=self.epochs, desc=self.label, unit="epoch", file=self.stream, leave=False)
        elif kind == "train":
            loss = event.get("loss")
            self.loss = sum(loss) if isinstance(loss, list) else loss
        elif kind == "valid":
            epoch = event["epoch"] + 1
            of = f"/{self.epochs}" if self.epochs else ""
            loss = f" loss {self.loss:.4f}" if isinstance(self.loss, (int, float)) else ""
            if self.bar is not None:
                self.bar.n = epoch
                self.bar.set_postfix_str(f"{loss.strip()} {self.metric} {event['score']:.4f}".strip())
            elif self.mode == "lines":
                self.say(f"{self.label}: epoch {epoch}{of}{loss} {self.metric} {event['score']:.4f} "
                         f"({elapsed:.1f}s)")

    def end(self, record):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.start
        if record["status"] == "ok":
            overall = normalize(record.get("metrics", {}).get("overall", {}))
            shown = "  ".join(f"{display_name(k)} {overall[k]:.4f}" for k in ordered(overall)[:4])
            self.say(f"{self.label}: done in {elapsed:.1f}s, best epoch {record.get('best_epoch')}: {shown}")
        else:
            self.say(f"{self.label}: FAILED after {elapsed:.1f}s: {record['error']} (log: {record.get('worker_log')})")
