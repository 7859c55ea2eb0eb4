"""The `cert-loader` command: plan, load, restore, backups, unload, recover, mark, grants, bench, snapshot, register and sample — a thin shell over the engine."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from cert_loader.config import LoaderConfig, backup_enabled
from cert_loader.constants import (
    ALL_STORES, ATOMIC_MODES, DEFAULT_STRATEGY, DEFAULT_VERIFY, PG_STORES, STRATEGIES, VERIFY_MODES,
)
from cert_loader.errors import CertLoaderError
from cert_loader.process import prepare_process

log = logging.getLogger("cert_loader")


def _stores(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(s.strip() for s in value.split(",") if s.strip())


def _config(args) -> LoaderConfig:
    return LoaderConfig.from_env(os.environ, data_root=getattr(args, "data_root", None), stores=_stores(getattr(args, "stores", None)))


def _readers(config: LoaderConfig) -> dict:
    """The PostgreSQL stores outside --stores whose URL is set: cross-store references read their committed rows."""
    from cert_loader.config import PgStoreConfig

    urls = {n: os.environ.get(f"CERT_{n.upper()}_URL", "").strip() for n in PG_STORES if n not in config.pg}
    return {n: PgStoreConfig(n, url) for n, url in urls.items() if url}


def cmd_load(args) -> int:
    from cert_loader.engine import LoadOptions, load_district
    from cert_loader.progress import TerminalProgress
    from cert_loader.report import render_summary

    config = _config(args)
    backup = backup_enabled(os.environ) if args.backup is None else args.backup
    options = LoadOptions(strategy=args.strategy, strict=args.strict, atomic=args.atomic, progress=TerminalProgress(),
                          bulk_fk=args.bulk_fk, readers=_readers(config), verify=args.verify,
                          backup=backup, keep=args.keep,
                          **({} if args.parallel is None else {"parallel": args.parallel}))
    try:
        report = load_district(config, args.district, options)
    except KeyboardInterrupt:  # the engine rolled back (or, after the decision, completed) and wrote the report
        from cert_loader.inputs import DistrictPaths

        print(f"interrupted: see the load report {DistrictPaths(config.data_root, args.district).report_file}",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        print(render_summary(report))
    report_to_dagster = bool(os.environ.get("DAGSTER_HOME")) if args.report_to_dagster is None else args.report_to_dagster
    if report_to_dagster and report.status == "SUCCESS":
        from cert_loader.defs.cli_report import manifest_path, report_cli_load

        # stderr, so --json output stays one JSON document; the load is committed whatever this says
        outcome = report_cli_load(report, manifest_path(os.environ, config.data_root))
        if outcome.reported:
            print(outcome.message, file=sys.stderr)
        else:
            log.warning(outcome.message)
    return 0 if report.status == "SUCCESS" else 1


def cmd_restore(args) -> int:
    from cert_loader.backup.restore import restore_district
    from cert_loader.engine import LoadOptions
    from cert_loader.progress import TerminalProgress
    from cert_loader.report import render_summary

    config = _config(args)
    report = restore_district(config, args.district, args.run, force=args.force,
                              options=LoadOptions(progress=TerminalProgress(), readers=_readers(config)))
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str) if args.json
          else render_summary(report))
    return 0 if report.status == "SUCCESS" else 1


def cmd_backups(args) -> int:
    from cert_loader.backup.catalogue import list_backups, prune_backups
    from cert_loader.backup.restore import live_catalogs
    from cert_loader.data_root import data_root
    from cert_loader.errors import ConfigError

    root = data_root(args.data_root or os.environ.get("CERT_DATA_ROOT") or ".")  # a directory or s3:// URL
    if args.prune is not None:
        for run_id in prune_backups(root, args.district, args.prune):
            print(f"removed {run_id}", file=sys.stderr)
    try:
        catalogs = live_catalogs(_config(args))  # columns checked against the live tables where reachable
    except (ConfigError, CertLoaderError) as exc:
        catalogs = None
        log.warning("backups are checked without the live catalogs (%s)", exc)
    infos = list_backups(root, args.district, catalogs)
    if args.json:
        print(json.dumps([b.to_json() for b in infos], indent=2, ensure_ascii=False))
        return 0
    if not infos:
        print(f"no backups of district {args.district} under {root / 'data' / 'backups' / args.district}")
        return 0
    print(f"{'RUN':<34} {'TIME':<27} {'STRATEGY':<9} {'ROWS':>10} {'SIZE':>10}  RESTORABLE")
    for b in infos:
        state = ("yes" + ("" if b.committed else " (its load is not in the history: it may not have committed)")
                 if b.restorable else f"no: {b.why_not}")
        print(f"{b.run_id:<34} {b.created_at:<27} {b.strategy or '-':<9} {b.rows:>10,} {_size(b.bytes):>10}  {state}")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def cmd_plan(args) -> int:
    from cert_loader.engine import LoadOptions, plan_district
    from cert_loader.plan_view import render_plan

    config = _config(args)
    pf = plan_district(config, args.district, LoadOptions(strategy=args.strategy, strict=args.strict, bulk_fk=args.bulk_fk,
                                                          readers=_readers(config)))
    try:
        print(render_plan(pf, as_json=args.json))
        return 0 if not pf.plan.problems else 1
    finally:
        pf.close()


def cmd_unload(args) -> int:
    from cert_loader.engine import unload_district

    config = _config(args)
    deleted = unload_district(config, args.district, readers=_readers(config))
    for store, tables in deleted.items():
        total = sum(tables.values())
        print(f"{store.upper():5} deleted {total:,} rows/nodes of district {args.district}")
    return 0


def cmd_recover(args) -> int:
    from cert_loader.mark import require_marked
    from cert_loader.stores.graph import GraphStore
    from cert_loader.transaction import recover

    config = _config(args)
    require_marked(dict(config.pg))  # the wrong-target guard: touch nothing unless every store is CERT
    with GraphStore(config.graph) if config.graph is not None else contextlib.nullcontext() as graph:
        items = recover(dict(config.pg), graph.decision if graph is not None else None)
    if not items:
        print("nothing in doubt")
    for item in items:
        print(f"{item.store}: {item.gid}: {item.action}")
    return 0 if all(i.action in ("committed", "rolled back") for i in items) else 1


def cmd_mark(args) -> int:
    from cert_loader.mark import mark_store
    from cert_loader.stores.postgres import PgStore

    config = _config(args)
    failed = 0
    for name, cfg in config.pg.items():
        try:
            with PgStore(cfg) as store:
                database = mark_store(store)
            print(f"{name}: marked database {database!r} as a CERT store ({cfg.redacted()})")
        except CertLoaderError as exc:  # report per store, keep going
            failed += 1
            print(f"error: could not mark: {exc}", file=sys.stderr)
    return 1 if failed else 0


def cmd_grants(args) -> int:
    from cert_loader.catalog import read_catalog
    from cert_loader.grants import grant_statements, read_grant_targets, referenced_parents
    from cert_loader.mark import loader_schema_exists
    from cert_loader.references import bind_references, read_references, references_path
    from cert_loader.stores.postgres import PgStore

    args.stores = args.stores or ",".join(PG_STORES)  # grants are for the PostgreSQL stores only
    config = _config(args)
    catalogs = {}
    for name, cfg in config.pg.items():
        with PgStore(cfg) as store:
            catalogs[name] = read_catalog(store.conn, name)
    # Declared cross-store references read their parents from another store's load: SELECT on those too.
    refs, problems = read_references(references_path(config.data_root))
    binding = bind_references(refs, catalogs)
    for problem in [*problems, *binding.problems]:
        print(f"-- not granted for a declared reference: {problem}")
    for name, cfg in config.pg.items():
        with PgStore(cfg) as store:
            targets = read_grant_targets(store.conn, name, catalogs[name], referenced_parents(binding.references, name))
            marked = loader_schema_exists(store.conn)
        print(f"-- {name}: database {targets.database!r} ({cfg.redacted()}), run by its owner")
        if not marked:
            print(f"-- not marked yet: run `cert-loader mark --stores {name}` first (it creates the schema cert_loader)")
        print("\n".join(grant_statements(args.role, targets)))
    return 0


def cmd_sample(args) -> int:
    from cert_loader.data_root import data_root
    from cert_loader.sample import generate_district

    root = data_root(args.data_root or os.environ.get("CERT_DATA_ROOT") or ".")  # a directory or s3:// URL
    summary = generate_district(root, args.district, students=args.students, status=args.status)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_bench(args) -> int:
    from cert_loader.bench import SECTIONS, render, run_bench

    sections = tuple(_stores(args.sections) or SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"error: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    results = run_bench(args.admin_url, args.rows, Path(args.out) if args.out else None, repeat=args.repeat,
                        sections=sections, memory_rows=tuple(args.memory_rows), district_rows=args.district_rows,
                        levels=tuple(args.levels), say=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(results))
    return 0


def cmd_snapshot(args) -> int:
    from cert_loader.manifest import manifest_location, snapshot, write_manifest

    config = _config(args)
    # --out, else CERT_SCHEMA_MANIFEST, else under the data root: each may be an s3:// URL (one whole-object write)
    out = manifest_location(args.out or os.environ.get("CERT_SCHEMA_MANIFEST"), config.data_root)
    manifest = snapshot(config)
    out = write_manifest(manifest, out)
    for name, store in manifest.stores.items():
        print(f"{name}: {len(store.cert_tables)} CERT tables ({len(store.tables)} in all) from database {store.database!r}")
    if manifest.graph_assets:
        print(f"sp: assets {', '.join(manifest.graph_assets)}")
    print(f"wrote {out}; reload the Dagster code location to pick it up")
    return 0


def cmd_register(args) -> int:
    from cert_loader.defs.partitions import register_districts

    if not os.environ.get("DAGSTER_HOME"):
        print("error: DAGSTER_HOME is not set; point it at the directory holding dagster.yaml", file=sys.stderr)
        return 2
    import dagster as dg

    logging.getLogger("alembic").setLevel(logging.WARNING)  # dagster-postgres migrates a new instance's tables
    with dg.DagsterInstance.get() as instance:
        added = register_districts(instance, args.districts)
    for name in args.districts:
        print(f"{name}: {'added' if name in added else 'already registered'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cert-loader", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, district=True):
        if district:
            p.add_argument("district", help="district id (directory under data/anonymized/)")
        p.add_argument("--data-root", help="directory holding data/ (default: $CERT_DATA_ROOT or .)")
        p.add_argument("--stores", help=f"comma-separated subset of {','.join(ALL_STORES)} (default: all)")

    p = sub.add_parser("load", help="load a district into CERT, all-or-nothing")
    common(p)
    p.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY)
    p.add_argument("--strict", action="store_true", help="a missing or unlisted file is an error, not a warning")
    p.add_argument("--atomic", choices=ATOMIC_MODES, default=ATOMIC_MODES[0],
                   help="two-phase commit across stores: auto (when every server allows it), required, off")
    p.add_argument("--bulk-fk", action="store_true",
                   help="table owners: drop the loaded tables' foreign keys for the load and re-add them (validated) "
                        "in the same transaction; locks those tables ACCESS EXCLUSIVE until commit")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=None,
                   help="load the stores (and the graph) side by side in threads (default: see README)")
    p.add_argument("--verify", choices=VERIFY_MODES, default=DEFAULT_VERIFY,
                   help="counts: row counts and FKs (default); content: also every value of every loaded table "
                        "against its file, inside the transaction (measured: ~2.7 s per 1M rows of 14 mixed "
                        "columns, ~1.6 s over the seed district's 750k rows; README)")
    p.add_argument("--backup", action=argparse.BooleanOptionalAction, default=None,
                   help="first write the district's current rows and subgraph to data/backups/D/<run id>/, so "
                        "`cert-loader restore` can undo this load (default: $ENABLE_CERT_BACKUP; README, Undo)")
    p.add_argument("--keep", type=int, metavar="N",
                   help="with --backup: after the commit keep only the newest N backups of the district (default: all)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    p.add_argument("--report-to-dagster", action=argparse.BooleanOptionalAction, default=None,
                   help="after a committed load, report its materializations and check results to the Dagster "
                        "instance at $DAGSTER_HOME (default: when DAGSTER_HOME is set)")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("restore", help="undo loads: put back the pre-image a load with --backup wrote, all stores together")
    common(p)
    p.add_argument("--run", required=True, metavar="RUN_ID", help="the run whose backup to restore (`cert-loader backups D`)")
    p.add_argument("--force", action="store_true", help="restore even though later loads of the district committed")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("backups", help="list a district's backups (run, time, strategy, rows, size, restorable)")
    common(p)
    p.add_argument("--prune", type=int, metavar="N", help="remove all but the newest N backups")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_backups)

    p = sub.add_parser("plan", help="pre-flight only: show what a load would do; nothing is written")
    common(p)
    p.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY)
    p.add_argument("--strict", action="store_true")
    p.add_argument("--bulk-fk", action="store_true", help="also check that the role may take the FKs off (load --bulk-fk)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("unload", help="delete a district's rows from every store (CERT clean-up)")
    common(p)
    p.set_defaults(func=cmd_unload)

    p = sub.add_parser("recover", help="resolve in-doubt prepared transactions left by a crashed load")
    common(p, district=False)
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("mark", help="mark the configured databases as CERT stores (database owner)")
    common(p, district=False)
    p.set_defaults(func=cmd_mark)

    p = sub.add_parser("grants", help="print the GRANT statements a CERT owner runs for the loader's role (least privilege)")
    common(p, district=False)
    p.add_argument("--role", required=True, help="the loader's login role")
    p.set_defaults(func=cmd_grants)

    p = sub.add_parser("bench", help="measure load rates against server-side COPY in the same run")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the FK'd child table (default 1,000,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measure, in rotating order; medians reported")
    p.add_argument("--sections", help="comma-separated subset of relational,memory,graph,seed,undo,districts (default: all)")
    p.add_argument("--memory-rows", type=int, nargs="+", default=[100_000, 5_000_000],
                   help="largest-table sizes whose peak RSS is measured (default 100000 5000000)")
    p.add_argument("--district-rows", type=int, default=150_000,
                   help="districts section: rows per district, the seed shape's 157 tables scaled (default 150000)")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="districts section: how many districts load at once, per measure (default 1 2 4 8)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--admin-url", default=os.environ.get("CERT_BENCH_ADMIN_URL", "postgresql://root@127.0.0.1:5432/postgres"),
                   help="a superuser URL: the benchmark creates and drops its own database")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("snapshot", help="write the schema manifest the Dagster code location builds its assets from")
    common(p, district=False)
    p.add_argument("--out", help="manifest file (default: $CERT_SCHEMA_MANIFEST or data/analysis/cert-schema.json under the data root)")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("register", help="add districts as partitions to the Dagster instance at $DAGSTER_HOME")
    p.add_argument("districts", nargs="+", metavar="district")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("sample", help="generate a sample district's input files")
    p.add_argument("district")
    p.add_argument("--data-root")
    p.add_argument("--students", type=int, default=200)
    p.add_argument("--status", default="PASSED", choices=("PASSED", "PASSED_WITH_WARNINGS", "FAILED"))
    p.set_defaults(func=cmd_sample)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prepare_process()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The neo4j driver logs connection details at debug level; keep it quiet.
    logging.getLogger("neo4j").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except CertLoaderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
