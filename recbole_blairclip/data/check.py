"""Independent brute-force checker of a converted leave-one-out split.

It shares no code with :mod:`recbole_blairclip.data.split` or :mod:`recbole_blairclip.data.atomic`:
it reads the text files itself, rebuilds every user's ordered interactions from ``<name>.inter`` with
plain Python sorting (timestamp, then item id: the documented tie rule) and compares every row of
``<name>.train.inter``, ``<name>.train_seq.inter``, ``<name>.valid.inter`` and ``<name>.test.inter``
with what the split must be:

- ``.inter`` has no repeated (user, item) pair and every user has at least ``min_user_inter`` rows;
- test = the user's latest interaction, valid = the one before it (three-way split, users with >= 3);
  no valid/test interaction occurs in train; train is exactly the rest (nothing missing or invented);
- every valid/test history contains only strictly earlier interactions of the user and is complete:
  the most recent ``max_item_list_length`` earlier items, oldest first;
- ``train_seq`` holds exactly one row per training prefix with >= 1 earlier training item;
- every item of the interactions is listed in ``<name>.item`` (when present);
- every file is valid UTF-8, every rating/timestamp a number, no id is RecBole's padding token
  ``[PAD]``, and every file loads with RecBole's own reader settings (``pandas.read_csv``, python
  engine, tab-separated, whose csv module refuses fields over 131072 characters).

A corrupt file is reported as a violation naming the file, line and field (exit status 1), never a
traceback.
"""
import csv
import json
import os
from collections import Counter, defaultdict

PAD_TOKEN = "[PAD]"
FLOAT_COLUMNS = (2, 3)  # rating, timestamp in every interaction file


class SplitCheck:
    """Result of :func:`check_split`: ``ok``, the first ``violations`` (strings) and ``counts``."""

    def __init__(self, max_violations):
        self.max_violations = max_violations
        self.violations = []
        self.n_violations = 0
        self.counts = {}

    def fail(self, message):
        self.n_violations += 1
        if len(self.violations) < self.max_violations:
            self.violations.append(message)

    @property
    def ok(self):
        return self.n_violations == 0

    def summary(self):
        if self.ok:
            c = self.counts
            return (f"OK: leave-one-out split verified ({c.get('users', 0)} users, {c.get('inter', 0)} "
                    f"interactions, {c.get('train', 0)} train / {c.get('valid', 0)} valid / "
                    f"{c.get('test', 0)} test rows, {c.get('train_seq', 0)} train_seq rows)")
        lines = [f"FAILED: {self.n_violations} violation(s); first {len(self.violations)}:"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read(path, n_cols, check, float_columns=FLOAT_COLUMNS, id_columns=(0, 1)):
    """Rows of an atomic file as lists of strings; bad lines are violations (file, line, field)."""
    rows = []
    base = os.path.basename(path)
    if not os.path.isfile(path):
        check.fail(f"{base}: missing file")
        return None
    with open(path, "rb") as f:
        lines = iter(f)
        try:
            header = next(lines, b"").decode("utf-8").rstrip("\n").split("\t")
        except UnicodeDecodeError:
            check.fail(f"{base} line 1: the header is not valid UTF-8")
            return None
        if len(header) != n_cols:
            check.fail(f"{base}: header has {len(header)} columns, expected {n_cols}: {header}")
            return None
        names = [h.split(":", 1)[0] for h in header]
        for k, raw in enumerate(lines, 2):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                check.fail(f"{base} line {k}: not valid UTF-8 (byte {exc.start}); re-run blairclip convert")
                continue
            v = line.rstrip("\n").split("\t")
            if len(v) != n_cols:
                check.fail(f"{base} line {k}: {len(v)} columns, expected {n_cols}")
                continue
            bad = next((c for c in float_columns if c < n_cols and not _is_number(v[c])), None)
            if bad is not None:
                check.fail(f"{base} line {k}: field {names[bad]} is {v[bad][:40]!r}, not a number")
                continue
            pad = next((c for c in id_columns if v[c] == PAD_TOKEN), None)
            if pad is not None:
                check.fail(f"{base} line {k}: field {names[pad]} is RecBole's padding token {PAD_TOKEN}")
                continue
            rows.append(v)
    return rows


def _recbole_loads(path, check):
    """Read ``path`` as RecBole 1.2.1's ``Dataset._load_feat`` does (pandas, python engine, tab, utf-8)."""
    import pandas as pd

    if not os.path.isfile(path):
        return
    try:
        pd.read_csv(path, delimiter="\t", dtype=str, encoding="utf-8", engine="python")
    except Exception as exc:  # noqa: BLE001 - whatever RecBole's reader would raise is the finding
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        limit = csv.field_size_limit()
        check.fail(f"{os.path.basename(path)}: RecBole's reader cannot load it ({type(exc).__name__}: "
                   f"{first}; fields are limited to {limit} characters): re-run blairclip convert")


def _load_params(stats_path, check):
    if not os.path.isfile(stats_path):
        return {}
    try:
        with open(stats_path, encoding="utf-8") as f:
            params = json.load(f).get("params", {})
    except json.JSONDecodeError as exc:
        check.fail(f"{os.path.basename(stats_path)} line {exc.lineno}: broken JSON ({exc.msg}); "
                   "its parameters are not used")
        return {}
    except (UnicodeDecodeError, AttributeError) as exc:
        check.fail(f"{os.path.basename(stats_path)}: not a stats object ({type(exc).__name__}); "
                   "its parameters are not used")
        return {}
    if not isinstance(params, dict):
        check.fail(f"{os.path.basename(stats_path)}: field params is not an object; not used")
        return {}
    return params


def check_split(folder, name=None, max_item_list_length=None, two_way=None, min_user_inter=None,
                max_violations=20):
    """Verify the split in ``folder`` (dataset ``name``, default: the folder's base name).

    Parameters default to those recorded in ``<name>.stats.json`` (else 50, three-way when the valid
    file has rows, 2). Returns a :class:`SplitCheck`.
    """
    folder = os.fspath(folder).rstrip("/")
    name = name or os.path.basename(folder)
    check = SplitCheck(max_violations)
    params = _load_params(os.path.join(folder, f"{name}.stats.json"), check)
    L = max_item_list_length or params.get("max_item_list_length", 50)
    min_n = min_user_inter or params.get("min_user_inter", 2)
    p = lambda suffix: os.path.join(folder, f"{name}.{suffix}")  # noqa: E731

    inter = _read(p("inter"), 4, check)
    train = _read(p("train.inter"), 4, check)
    train_seq = _read(p("train_seq.inter"), 5, check)
    valid = _read(p("valid.inter"), 5, check)
    test = _read(p("test.inter"), 5, check)
    if None in (inter, train, train_seq, valid, test):
        return check
    if two_way is None:
        two_way = params.get("split") == "two_way" if "split" in params else not valid

    # per user, every interaction ordered by (time, item id)
    events = defaultdict(list)
    pairs = Counter()
    for u, i, r, t in inter:
        events[u].append((float(t), i, r, t))
        pairs[(u, i)] += 1
    for (u, i), c in pairs.items():
        if c > 1:
            check.fail(f"{name}.inter: user {u} has item {i} {c} times (duplicates must be removed)")
    prev_u = None
    closed = set()
    for u, i, r, t in inter:  # user blocks contiguous, time non-decreasing inside
        if u != prev_u:
            if u in closed:
                check.fail(f"{name}.inter: rows of user {u} are not contiguous")
            closed.add(prev_u)
            prev_u, prev_t = u, float(t)
        elif float(t) < prev_t:
            check.fail(f"{name}.inter: user {u} rows not sorted by time (item {i})")
        prev_t = max(prev_t, float(t))
    for u, ev in events.items():
        ev.sort(key=lambda e: (e[0], e[1]))
        if len(ev) < min_n:
            check.fail(f"user {u} has {len(ev)} interaction(s) in {name}.inter, fewer than min_user_inter={min_n}")
    positions = {u: {e[1]: k for k, e in enumerate(ev)} for u, ev in events.items()}

    expected_test, expected_valid, expected_train = {}, {}, {}
    for u, ev in events.items():
        expected_test[u] = len(ev) - 1
        if not two_way and len(ev) >= 3:
            expected_valid[u] = len(ev) - 2
        cut = len(ev) - (2 if u in expected_valid else 1)
        expected_train[u] = list(range(cut))

    def position(u, i, r, t, where):
        ev = events.get(u)
        if ev is None:
            check.fail(f"{where}: user {u} does not occur in {name}.inter")
            return None
        k = positions[u].get(i)
        if k is None:
            check.fail(f"{where}: user {u} item {i} does not occur in {name}.inter")
            return None
        e = ev[k]
        if e[3] != t or e[2] != r:
            check.fail(f"{where}: user {u} item {i} has rating/time {r}/{t}, {name}.inter says {e[2]}/{e[3]}")
        return k

    # train: exactly the expected rows, none of them a valid/test target
    got_train = defaultdict(list)
    for u, i, r, t in train:
        k = position(u, i, r, t, f"{name}.train.inter")
        if k is None:
            continue
        if k == expected_test.get(u):
            check.fail(f"leak: user {u}'s test item {i} is in {name}.train.inter")
        elif k == expected_valid.get(u):
            check.fail(f"leak: user {u}'s valid item {i} is in {name}.train.inter")
        got_train[u].append(k)
    for u in events:
        want, got = expected_train[u], sorted(got_train.get(u, []))
        if got != want:
            missing = [events[u][k][1] for k in sorted(set(want) - set(got))]
            extra = Counter(got) - Counter(want)
            if missing:
                check.fail(f"{name}.train.inter: user {u} is missing training item(s) {missing[:5]}")
            if extra:
                check.fail(f"{name}.train.inter: user {u} has unexpected/repeated row(s) "
                           f"{[events[u][k][1] for k in extra][:5]}")

    def check_history(u, k, hist, where):
        ev = events[u]
        items_pos = positions[u]
        for h in hist:
            j = items_pos.get(h)
            if j is None:
                check.fail(f"{where}: user {u}'s history item {h} is not one of the user's interactions")
                return
            if j >= k:
                check.fail(f"leak: {where}: user {u}'s history item {h} is not strictly earlier than "
                           f"the target {ev[k][1]}")
                return
        want = [e[1] for e in ev[max(0, k - L):k]]
        if hist != want:
            check.fail(f"{where}: user {u}'s history for target {ev[k][1]} is {hist[-5:]}... "
                       f"(len {len(hist)}), expected the {len(want)} most recent earlier items ending "
                       f"{want[-5:]}")

    for rows, expected, label in ((test, expected_test, "test"), (valid, expected_valid, "valid")):
        where = f"{name}.{label}.inter"
        seen = Counter()
        for u, i, r, t, hist in rows:
            k = position(u, i, r, t, where)
            seen[u] += 1
            if k is None:
                continue
            if u not in expected:
                check.fail(f"{where}: user {u} should have no {label} row")
                continue
            if k != expected[u]:
                want = events[u][expected[u]][1]
                check.fail(f"{where}: wrong target for user {u}: {i}, expected {want} "
                           f"({'latest' if label == 'test' else 'second latest'} interaction)")
                continue
            check_history(u, k, hist.split(), where)
        for u in expected:
            if seen[u] == 0:
                check.fail(f"{where}: user {u} has no {label} row")
            elif seen[u] > 1:
                check.fail(f"{where}: user {u} has {seen[u]} {label} rows, expected 1")

    # train_seq: one row per training prefix with >= 1 earlier training item
    where = f"{name}.train_seq.inter"
    got_seq = defaultdict(list)
    for u, i, r, t, hist in train_seq:
        k = position(u, i, r, t, where)
        if k is None:
            continue
        if k not in expected_train.get(u, ()):
            check.fail(f"leak: {where}: user {u}'s item {i} is not a training interaction")
            continue
        got_seq[u].append(k)
        check_history(u, k, hist.split(), where)
    for u in events:
        want = expected_train[u][1:]
        if sorted(got_seq.get(u, [])) != want:
            check.fail(f"{where}: user {u} has training-prefix rows {sorted(got_seq.get(u, []))}, "
                       f"expected positions {want}")

    item_path = p("item")
    if os.path.isfile(item_path):
        with open(item_path, encoding="utf-8", errors="replace") as f:
            f.readline()
            listed = {line.split("\t", 1)[0].rstrip("\n") for line in f}
        if PAD_TOKEN in listed:
            check.fail(f"{name}.item: item_id {PAD_TOKEN} is RecBole's padding token")
        missing = sorted({i for _, i, _, _ in inter} - listed)
        if missing:
            check.fail(f"{name}.item: {len(missing)} interaction item(s) not listed, e.g. {missing[:5]}")

    for suffix in ("inter", "train.inter", "train_seq.inter", "valid.inter", "test.inter", "item"):
        _recbole_loads(p(suffix), check)

    check.counts = {"users": len(events), "inter": len(inter), "train": len(train), "valid": len(valid),
                    "test": len(test), "train_seq": len(train_seq), "max_item_list_length": L,
                    "two_way": bool(two_way)}
    return check
