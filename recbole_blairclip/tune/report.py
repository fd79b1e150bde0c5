"""A finished (or interrupted) Ray Tune search -> trial records, tables and the best configuration yaml.

Statuses: ``completed`` (trained to its last epoch or RecBole's early stopping), ``stopped early`` (the
scheduler ended it on its validation metric), ``failed`` (raised; its error is kept, never a score),
``unfinished`` (interrupted or not started: a resume runs it again).
"""
import csv
import io
import os

import yaml

from recbole_blairclip.config import load_yaml
from recbole_blairclip.io import first_error_line, json_ready
from recbole_blairclip.io import write_text as write_atomic
from recbole_blairclip.markdown import markdown_table
from recbole_blairclip.tune.trial import FINISHED_KEY

STATUS_COMPLETED = "completed"
STATUS_STOPPED = "stopped early"
STATUS_FAILED = "failed"
STATUS_UNFINISHED = "unfinished"


def saved_statuses(experiment_path):
    """trial_id -> status as Ray last checkpointed the experiment. On Ctrl-C Ray checkpoints with the
    running trials RUNNING, then stops them and marks them TERMINATED in memory; a resume reruns them."""
    import logging

    from ray.tune import ExperimentAnalysis

    analysis_logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis_logger.level
    analysis_logger.setLevel(logging.ERROR)  # it says at INFO level that it reads the checkpoint file
    try:
        return {t.trial_id: t.status for t in ExperimentAnalysis(experiment_path).trials}
    except Exception:  # no readable checkpoint (e.g. Ray client mode): use the in-memory statuses
        return {}
    finally:
        analysis_logger.setLevel(level)


def _last_run(rows):
    """A trial resumed without a checkpoint starts again at epoch 1 and appends to its progress file."""
    start = 0
    for i in range(1, len(rows)):
        if rows[i]["epoch"] <= rows[i - 1]["epoch"]:
            start = i
    return rows[start:]


def trial_id_of(result):
    """A trial's id from its Result: its folder is ``trial_<id>`` (the search's ``trial_dirname_creator``);
    the id Ray adds to every reported row is the fallback."""
    name = os.path.basename(str(result.path or "").rstrip("/"))
    if name.startswith("trial_"):
        return name[len("trial_"):]
    return str((result.metrics or {}).get("trial_id", name))


def trial_status(result, saved_status=None):
    """A trial's status from its Ray ``Result`` and the status Ray last saved for it."""
    if result.error is not None or saved_status == "ERROR":
        return STATUS_FAILED
    if saved_status is not None and saved_status != "TERMINATED":
        return STATUS_UNFINISHED
    metrics = result.metrics or {}
    if not metrics:
        return STATUS_UNFINISHED
    # Ray marks a trial the scheduler stopped "done" too: only the trial knows it reached its end
    return STATUS_COMPLETED if metrics.get(FINISHED_KEY) else STATUS_STOPPED


def collect_trials(results, param_names, mode, saved=None):
    """(records, epoch rows) from a Ray ``ResultGrid``: one record per trial, one row per validation."""
    saved = saved or {}
    records, epochs = [], []
    for result in results:
        trial_id = trial_id_of(result)
        status = trial_status(result, saved.get(trial_id))
        frame = result.metrics_dataframe
        rows = []
        if frame is not None and "valid_score" in frame:
            frame = frame[frame["valid_score"].notna()]
            metric_cols = [c for c in frame.columns if c.startswith("valid_") and c != "valid_score"]
            for _, row in frame.iterrows():
                values = {c[len("valid_"):]: float(row[c]) for c in metric_cols}
                rows.append({"trial_id": trial_id, "epoch": int(row["epoch"]),
                             "valid_score": float(row["valid_score"]), **values})
        rows = _last_run(rows)
        epochs.extend(rows)
        pick = max if mode == "max" else min
        best_row = pick(rows, key=lambda r: r["valid_score"]) if rows else None
        record = {"trial_id": trial_id, "status": status}
        record.update({name: json_ready((result.config or {}).get(name)) for name in param_names})
        record.update(
            best_valid=best_row["valid_score"] if best_row else None,
            best_epoch=best_row["epoch"] if best_row else None,
            epochs_run=rows[-1]["epoch"] if rows else 0,
            validations=len(rows),
            error=first_error_line(result.error) if status == STATUS_FAILED else "",
            trial_dir=str(result.path or ""),
        )
        records.append(record)
    records.sort(key=lambda r: (r["best_valid"] is None, 0.0 if r["best_valid"] is None
                                else (-r["best_valid"] if mode == "max" else r["best_valid"])))
    return records, epochs


def best_record(records):
    """The best of the trials that ran to their end or were stopped by the scheduler (records sorted)."""
    for record in records:
        if record["best_valid"] is not None and record["status"] in (STATUS_COMPLETED, STATUS_STOPPED):
            return record
    return None


def csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def trials_csv(records, param_names):
    columns = ["trial_id", *param_names, "best_valid", "best_epoch", "epochs_run", "validations", "status",
               "error", "trial_dir"]
    return csv_text(records, columns)


def epochs_csv(rows):
    metric_cols = sorted({k for row in rows for k in row} - {"trial_id", "epoch", "valid_score"})
    return csv_text(rows, ["trial_id", "epoch", "valid_score", *metric_cols])


def _md_cell(value):
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_number(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def trials_markdown(records, param_names, metric_name, title):
    """``# title`` and one row per trial (best first, as ``records`` are sorted)."""
    columns = ["trial_id", *param_names, "best_valid", "best_epoch", "epochs_run", "status", "error"]
    header = ["trial", *param_names, f"best valid {metric_name}", "best epoch", "epochs run", "status", "error"]
    cells = {h: [_md_cell(r.get(c)) for r in records] for h, c in zip(header, columns)}
    # numbers right-aligned; names, booleans and lists left-aligned
    text_columns = ("trial", "status", "error",
                    *(p for p in param_names if not all(_is_number(r.get(p)) for r in records)))
    return f"# {title}\n\n" + markdown_table(cells, text_columns=text_columns) + "\n"


def best_config_yaml(model, dataset, config_files, config_dict, params, metric_name, score):
    """The best configuration as one self-contained yaml for ``run_recbole --config_files``: the run's
    config files, then its config_dict, then the best trial's values (the search's own priority)."""
    merged = {}
    for path in config_files:
        merged.update(load_yaml(path))
    merged.update({k: v for k, v in config_dict.items() if k not in ("output_dir", "gpu_id", "use_gpu")})
    merged.update(json_ready(params))
    body = yaml.safe_dump(json_ready(merged), sort_keys=False, default_flow_style=False, allow_unicode=True)
    header = (
        f"# Best configuration of a Ray Tune search: {model} on {dataset}, best valid {metric_name} = {score:.6g}.\n"
        f"# Searched keys: {', '.join(params)}. Run it with:\n"
        f"#   run_recbole --model={model} --dataset={dataset} --config_files=<this file>\n"
    )
    return header + body


__all__ = [
    "STATUS_COMPLETED", "STATUS_STOPPED", "STATUS_FAILED", "STATUS_UNFINISHED", "write_atomic",
    "first_error_line", "saved_statuses", "trial_id_of", "trial_status", "collect_trials", "best_record", "trials_csv",
    "epochs_csv", "trials_markdown", "best_config_yaml",
]
