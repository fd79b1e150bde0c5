"""Published numbers beside reproduced ones: the ``reference:`` key of a benchmark yaml and its report table.

A benchmark yaml may carry, per row, a list of published values::

    reference:
      SASRec:
        - {metric: ndcg@10, value: 0.2393, dataset: diginetica,
           protocol: "5-core, leave-one-out, full sort", source: "RUCAIBox/RecBole-GNN results/..."}

``metric``, ``value`` and ``source`` are required, ``dataset`` and ``protocol`` recommended. The report
(:func:`reference_table`) shows one line per published value: the reproduced mean of the same metric in
this run, the published value, the difference, and the dataset / protocol / source, so a reader sees at
once whether the two numbers are comparable (a value measured on another dataset is context, not a target).
"""
import math

from recbole_blairclip.errors import ConfigError

REQUIRED = ("metric", "value", "source")
OPTIONAL = ("dataset", "protocol")


def parse_reference(value, source):
    """``{row: [entry, ...]}`` from the yaml value, each entry checked; ConfigError names the file and row."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `reference` must map a row name to a list of "
                          "{metric, value, source, dataset, protocol}, got " + type(value).__name__)
    out = {}
    for row, entries in value.items():
        entries = [entries] if isinstance(entries, dict) else entries
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: `reference.{row}` must be a list of mappings, got {entries!r}")
        checked = []
        for k, entry in enumerate(entries):
            where = f"{source}: `reference.{row}[{k}]`"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} must be a mapping with {', '.join(REQUIRED)}, got {entry!r}")
            missing = [key for key in REQUIRED if key not in entry]
            unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
            if missing or unknown:
                raise ConfigError(f"{where}: " + (f"missing {missing}" if missing else f"unknown key(s) {unknown}")
                                  + f"; keys are {', '.join(REQUIRED + OPTIONAL)}")
            number = entry["value"]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise ConfigError(f"{where}: value must be a finite number, got {number!r}")
            checked.append({"metric": str(entry["metric"]).lower(), "value": float(number),
                            "dataset": str(entry.get("dataset", "")), "protocol": str(entry.get("protocol", "")),
                            "source": str(entry["source"])})
        out[str(row)] = checked
    return out


def reference_table(summary, reference, dataset=None):
    """Markdown: Model | Metric | Reproduced | Published | Difference | Published on | Protocol | Source;
    None when there is no reference. ``summary`` as :func:`recbole_blairclip.benchmark.summary.summarize`."""
    from recbole_blairclip.benchmark.metric_names import display_name
    from recbole_blairclip.benchmark.tables import fmt_metric
    from recbole_blairclip.markdown import markdown_table

    lines = []
    for row, entries in (reference or {}).items():
        if row not in summary:
            continue
        overall = summary[row]["metrics"].get("overall", {})
        for e in entries:
            stat = overall.get(e["metric"])
            mean = stat["mean"] if stat and stat.get("mean") is not None else None
            diff = f"{mean - e['value']:+.4f}" if mean is not None else "-"
            on = e["dataset"] or "-"
            if dataset and e["dataset"] and e["dataset"] != dataset:
                on += " (another dataset)"
            # mean (± std over seeds); the interval and significance marks are in the main table
            reproduced = fmt_metric({"mean": mean, "std": stat.get("std")} if mean is not None else None)
            lines.append([row, display_name(e["metric"]), reproduced, f"{e['value']:.4f}", diff, on,
                          e["protocol"] or "-", e["source"]])
    if not lines:
        return None
    header = ["Model", "Metric", "Reproduced", "Published", "Difference", "Published on", "Protocol", "Source"]
    return markdown_table(dict(zip(header, zip(*lines))), text_columns=("Model", "Metric", "Published on",
                                                                       "Protocol", "Source"))


def reference_section(summary, meta):
    """The report.md lines of the published-numbers section (empty when the benchmark has none)."""
    table = reference_table(summary, meta.get("reference"), meta.get("dataset"))
    if not table:
        return []
    return ["", "## Published numbers beside the reproduced ones", "",
            "Reproduced = this run's test mean (all test users); Published = the value its source reports, "
            "on the dataset and protocol named.", "", table]
