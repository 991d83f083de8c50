"""`ea evaluate`: the churn model against every baseline, on CDNOW and on the simulator.

Each dataset is loaded into a fresh warehouse of its own under --workdir through the product's
own path (CDNOW: `ea load-history` with config/examples/cdnow_mapping.yml; the simulator: its
landing folders through the ingestion job), the marts are built by the marts job, and one churn
model is trained, judged on a date split against the baselines with account-level bootstrap
intervals, shadow-scored and put to the promotion gate (docs/ml.md). The tables go to stdout
and, with --docs, replace the marked sections of docs/ml.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "ml.md"
CDNOW_MAPPING = REPO / "config" / "examples" / "cdnow_mapping.yml"
SIM_START, SIM_END = dt.date(2024, 1, 1), dt.date(2025, 12, 31)


def say(message: str) -> None:
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cdnow_file() -> Path:
    """The CDNOW purchase log inside the installed `lifetimes` wheel (its code is not used)."""
    import importlib.util

    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("The `lifetimes` package (which ships CDNOW) is not installed.")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.exists():
        raise SystemExit(f"{path} is missing from the installed lifetimes package.")
    return path


def _workspace(root: Path) -> Path:
    """Point every variable the pipeline reads at a fresh folder (its own warehouse, MLflow)."""
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    data = root / "data"
    (data / "landing").mkdir(parents=True)
    os.environ.update(
        {
            "EA_DATA_DIR": str(data),
            "EA_LANDING_DIR": str(data / "landing"),
            "DUCKDB_DATABASE": str(data / "warehouse.duckdb"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
        }
    )
    return data


def _build_marts(instance, data: Path) -> None:
    from orchestration.definitions import defs
    from orchestration.demo import Demo

    Demo(defs, instance, log_path=data / "evaluate_runs.log").run("marts_job")


def _train(data: Path, label: str):
    import duckdb

    from ml.features import outcome_dates
    from ml.pipeline import decide_from_run, train_candidate
    from orchestration.defs.ml import (
        TrainingConfig,
        load_training_frame,
        resolve_label_source,
        today_frame,
        train_config,
    )

    with duckdb.connect(os.environ["DUCKDB_DATABASE"], read_only=True) as con:
        frame = load_training_frame(con)
        source = resolve_label_source(con, "churn", "auto")
        events = outcome_dates(con, source)
        today, owners = today_frame(con, frame)
    cfg = train_config("churn", TrainingConfig(), source)
    say(f"  {label}: {len(frame):,} feature rows; label {cfg.label} ({cfg.describe_label()})")
    candidate = train_candidate(
        frame,
        events,
        today,
        owners,
        cfg,
        os.environ["MLFLOW_TRACKING_URI"],
        data / "mlflow-artifacts",
        tags={"evaluation": label},
    )
    decision = decide_from_run(os.environ["MLFLOW_TRACKING_URI"], candidate.version.run_id)
    return candidate, decision


def evaluate_simulator(root: Path, accounts: int, seed: int) -> str:
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.demo import Demo
    from simulator import SimConfig, simulate

    data = _workspace(root)
    say(f"simulator: {accounts} accounts, {SIM_START} .. {SIM_END}, seed {seed}")
    summary = simulate(
        SimConfig(accounts=accounts, start=SIM_START, end=SIM_END, seed=seed),
        data / "landing",
        root / "truth",
    )
    say(f"  {summary.events_written:,} events, outcomes {summary.outcomes}")
    instance = dg.DagsterInstance.ephemeral()
    demo = Demo(defs, instance, log_path=data / "evaluate_runs.log")
    days = sorted(dt.date.fromisoformat(p.name) for p in (data / "landing").iterdir() if p.is_dir())
    demo.ingest(days)
    _build_marts(instance, data)
    candidate, decision = _train(data, "simulator")
    header = (
        f"Simulator: {summary.accounts} accounts ({accounts} at the start), {SIM_START} .. "
        f"{SIM_END}, seed {seed}: {summary.outcomes.get('churned', 0)} churn outcomes."
    )
    return section(header, candidate, decision)


def evaluate_cdnow(root: Path) -> str:
    import dagster as dg

    data = _workspace(root)
    path = cdnow_file()
    say(f"CDNOW: loading {path.name} with {CDNOW_MAPPING.relative_to(REPO)}")
    from orchestration.cli import main as ea

    code = ea(["load-history", "--mapping", str(CDNOW_MAPPING), str(path)])
    if code:
        raise SystemExit(f"ea load-history failed with exit code {code}")
    instance = dg.DagsterInstance.ephemeral()
    _build_marts(instance, data)
    candidate, decision = _train(data, "cdnow")
    header = (
        "CDNOW: 69,659 purchases of 23,570 customers, 1997-01-01 .. 1998-06-30 "
        "(customer = account = user; no CRM, no contracts)."
    )
    return section(header, candidate, decision)


def section(header: str, candidate, decision) -> str:
    from ml.card import data_section, difference_table, metrics_table, strata_table

    result = candidate.result
    calendar = result.comparison.point.get("calendar")
    lines = [
        header,
        "",
        data_section(result),
        "",
        metrics_table(result),
        "",
        "Model minus each baseline (paired bootstrap, same resamples):",
        "",
        difference_table(result),
        "",
        "ROC AUC by stratum:",
        "",
        strata_table(result),
        "",
        f"**Promotion gate** ({candidate.shadow.accounts:,} accounts shadow-scored on "
        f"{candidate.shadow.as_of_date}): {decision.reason}.",
    ]
    if calendar:
        lines += [
            "",
            f"**The calendar alone** (renewal within {result.config.calendar_days} days): "
            f"ROC AUC {calendar['roc_auc']:.3f}, PR AUC {calendar['pr_auc']:.3f}.",
        ]
    return "\n".join(lines)


def write_docs(docs: Path, name: str, body: str) -> None:
    """Replace the text between `<!-- ea evaluate: name -->` and its closing marker."""
    text = docs.read_text()
    start, end = f"<!-- ea evaluate: {name} -->", f"<!-- /ea evaluate: {name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{docs} has no '{start}' ... '{end}' section to replace.")
    stamp = f"_Produced by `ea evaluate` on {dt.date.today().isoformat()}._"
    text = pattern.sub(lambda _: f"{start}\n{stamp}\n\n{body}\n{end}", text)
    docs.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ea evaluate",
        description=__doc__.splitlines()[0],
        epilog="examples:\n"
        "  ea evaluate --docs docs/ml.md      # both datasets, tables into docs/ml.md (~20 min)\n"
        "  ea evaluate --dataset cdnow        # print the CDNOW section only",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", choices=["all", "cdnow", "simulator"], default="all")
    parser.add_argument("--workdir", type=Path, default=Path("data") / "evaluate")
    parser.add_argument("--accounts", type=int, default=600, help="simulated accounts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--docs", type=Path, help="write the tables into this docs file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out = {}
    if args.dataset in ("all", "cdnow"):
        out["cdnow"] = evaluate_cdnow(args.workdir.resolve() / "cdnow")
    if args.dataset in ("all", "simulator"):
        out["simulator"] = evaluate_simulator(
            args.workdir.resolve() / "simulator", args.accounts, args.seed
        )
    for name, body in out.items():
        print(f"\n## {name}\n\n{body}\n")
        if args.docs:
            write_docs(args.docs, name, body)
    say(f"done in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
