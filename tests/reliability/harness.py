"""Racing and killing the payout jobs as real processes, and checking the money.

Nothing here imports the apps: the jobs run as ``manage.py run_job`` child
processes against a copy of a prepared world, and the checks are SQL over that
copy, comparing what reached user accounts with what the world was built to
owe (``reliability_owed``, written by ``tests.reliability.worlds`` from its own
arithmetic) and with the payable items the programs recorded before any run
(``reliability_items``).

Databases, all on the test server and named after the test database
(``<test db>_rel_...``): ``base`` (migrated, empty), one world per job
(``w_<job>``, built once per session from ``base``), one trial copy per job
(``t_<job>``, ``CREATE DATABASE ... TEMPLATE`` the world, remade for every
trial).
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent.parent
PYTHON = sys.executable
UNIT = Decimal("0.00000001")  # the asset's smallest unit: 8 places (RULES.md 0)


# --- the jobs under test ---------------------------------------------------------------


@dataclass(frozen=True)
class PayoutJob:
    """A payout job, how to race it and what it pays."""

    name: str  # the world's name
    job: str  # the registered job
    key: str  # "day" or "at"
    # scenario -> the keys of the two runs started together
    scenarios: Mapping[str, tuple[str, str]]
    # the key of the run that is killed and rerun
    kill_key: str
    # the clock of every run (after D+1 began for every day named)
    frozen_now: str
    credit_kinds: tuple[str, ...]
    # the program's table of payable items (ledger.payables Payer.table)
    item_table: str
    # the payable items as the program records them, unpaid, before any run:
    # (item_id, user_id, asset, account_kind, amount)
    items_sql: str


D0, D1, D2 = "2026-11-19", "2026-11-20", "2026-11-21"
DAY_SCENARIOS = {
    # the incident: the payouts of D and D+1 started together
    "days D and D+1": (D1, D2),
    "day D+1 twice": (D2, D2),
    # a catch-up of a missed day beside the scheduled run
    "catch-up D-1 beside D+1": (D0, D2),
}

JOBS: dict[str, PayoutJob] = {
    job.name: job
    for job in (
        PayoutJob(
            name="vouchers",
            job="pay_voucher_compensation",
            key="day",
            scenarios=DAY_SCENARIOS,
            kill_key=D2,
            frozen_now="2026-11-22T00:30:00Z",
            credit_kinds=("voucher.compensation",),
            item_table="vouchers_consumption",
            items_sql="""
                SELECT c.id, c.user_id, p.asset, 'spot', c.amount
                FROM vouchers_consumption c
                JOIN vouchers_voucher v ON v.id = c.voucher_id
                JOIN vouchers_voucherprogram p ON p.id = v.program_id
                WHERE c.cancelled_at IS NULL AND c.paid_at IS NULL
            """,
        ),
        PayoutJob(
            name="campaigns",
            job="issue_campaign_bonuses",
            key="at",
            scenarios={
                "hours H and H+1": ("2026-11-09T09:00:00Z", "2026-11-09T10:00:00Z"),
                "hour H twice": ("2026-11-09T10:00:00Z", "2026-11-09T10:00:00Z"),
                "catch-up after the draw beside H": (
                    "2026-11-08T02:00:00Z",
                    "2026-11-09T10:00:00Z",
                ),
            },
            kill_key="2026-11-09T10:00:00Z",
            frozen_now="2026-11-09T10:30:00Z",
            credit_kinds=("campaign.coverage_rebate", "campaign.daily_prize"),
            item_table="campaigns_reward",
            # Rewards of users disqualified from campaigns are void (RULES.md 1).
            items_sql="""
                SELECT r.id, r.user_id, c.asset, 'futures_bonus', r.amount
                FROM campaigns_reward r JOIN campaigns_campaign c ON c.id = r.campaign_id
                WHERE NOT EXISTS (SELECT 1 FROM ledger_riskmeasure m WHERE m.user_id = r.user_id
                                  AND m.measure = 'disqualify_campaigns')
            """,
        ),
        PayoutJob(
            name="referrals",
            job="distribute_referral_commissions",
            key="day",
            scenarios=DAY_SCENARIOS,
            kill_key=D2,
            frozen_now="2026-11-22T01:00:00Z",
            credit_kinds=("referral.commission",),
            item_table="referrals_commission",
            items_sql="""
                SELECT id, referrer_id, asset, 'spot', amount
                FROM referrals_commission WHERE status = 'settled'
            """,
        ),
        PayoutJob(
            name="earn",
            job="distribute_earn_interest",
            key="day",
            scenarios=DAY_SCENARIOS,
            kill_key=D2,
            frozen_now="2026-11-22T00:40:00Z",
            credit_kinds=("earn.interest",),
            item_table="earn_dailyinterest",
            items_sql="""
                SELECT id, user_id, asset, 'spot', interest
                FROM earn_dailyinterest WHERE interest > 0
            """,
        ),
    )
}


# --- databases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    user: str
    password: str = ""


@dataclass(frozen=True)
class Server:
    """The test PostgreSQL server and the names of this suite's databases on it.

    ``admin`` makes, migrates, copies, checks and drops the databases (the
    owner role where the project runs under two roles, ``config.roles``);
    ``app`` is the role the jobs run as, as in production."""

    host: str
    port: str
    admin: Role
    app: Role
    prefix: str  # "<test database>_rel"

    @property
    def two_roles(self) -> bool:
        return self.admin.user != self.app.user

    def conninfo(self, dbname: str) -> dict[str, Any]:
        info: dict[str, Any] = {"dbname": dbname, "user": self.admin.user, "host": self.host}
        if self.port:
            info["port"] = self.port
        if self.admin.password:
            info["password"] = self.admin.password
        return info

    def url(self, dbname: str, role: Role | None = None) -> str:
        """A DATABASE_URL (config.settings parses it), as the application role by default."""
        role = role or self.app
        auth = quote(role.user, safe="") + (
            f":{quote(role.password, safe='')}" if role.password else ""
        )
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{dbname}?host={self.host}"
        port = f":{self.port}" if self.port else ""
        return f"postgresql://{auth}@{self.host}{port}/{dbname}"

    def name(self, suffix: str) -> str:
        return f"{self.prefix}_{suffix}"

    @contextmanager
    def connect(self, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(**self.conninfo(dbname or "postgres"), autocommit=True) as conn:
            yield conn

    def drop(self, dbname: str) -> None:
        with self.connect() as conn:
            _drop(conn, dbname)

    def copy(self, template: str, dbname: str) -> float:
        """Make ``dbname`` a fresh copy of ``template``; returns the seconds it took."""
        started = time.perf_counter()
        with self.connect() as conn:
            _drop(conn, dbname)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(dbname), sql.Identifier(template)
                )
            )
        return time.perf_counter() - started

    def keep(self, dbname: str, suffix: str) -> str:
        """Rename a trial's copy to keep it for a post-mortem; its new name."""
        kept = self.name(suffix)
        self.drop(kept)
        with self.connect() as conn:
            _quiet(conn, dbname)
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(kept)
                )
            )
        return kept

    def drop_all(self) -> None:
        """Every database of this suite (left by an earlier, interrupted session too)."""
        with self.connect() as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                    [self.prefix + "_"],
                )
            ]
        for name in names:
            self.drop(name)


class Copies:
    """Fresh copies of a world, trial after trial: two databases in turn, the
    next one made in the background while the current trial runs."""

    def __init__(self, server: Server, world: str, name: str) -> None:
        self.server = server
        self.world = world
        self.names = (server.name(f"t_{name}_a"), server.name(f"t_{name}_b"))
        self.turn = 0
        self.error: BaseException | None = None
        self.pending = self._start(0)

    def _start(self, slot: int) -> threading.Thread:
        def work() -> None:
            try:
                self.server.copy(self.world, self.names[slot])
            except BaseException as error:  # raised in the test by next()
                self.error = error

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        return thread

    def next(self) -> str:
        """A fresh copy (the other one starts being made anew)."""
        self.pending.join()
        if self.error is not None:
            raise self.error
        name = self.names[self.turn]
        self.turn ^= 1
        self.pending = self._start(self.turn)
        return name

    def close(self) -> None:
        self.pending.join()


@dataclass
class Lane:
    """What one trial at a time needs to itself: its copies, its verify_ledger."""

    copies: Copies
    verifier: Verifier


T = TypeVar("T")


def in_lanes(lanes: list[Lane], trials: Iterable[int], trial: Callable[[int, Lane], T]) -> list[T]:
    """Run ``trial(n, lane)`` for every n, as many at once as there are lanes
    (each trial on its own copy, so they share nothing but the machine);
    the results in the order of ``trials``."""
    free: queue.Queue[Lane] = queue.Queue()
    for lane in lanes:
        free.put(lane)

    def work(n: int) -> T:
        lane = free.get()
        try:
            return trial(n, lane)
        finally:
            free.put(lane)

    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        return list(pool.map(work, trials))


def _drop(conn: psycopg.Connection[Any], dbname: str, patience: float = 60) -> None:
    """Drop a database once the sessions on it are gone. A child's session
    outlives the child for a moment (its backend has yet to read the closed
    socket), and under two roles the owner may not end the application
    role's sessions itself (WITH (FORCE) needs pg_signal_backend)."""
    _quiet(conn, dbname, patience)
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _quiet(conn: psycopg.Connection[Any], dbname: str, patience: float = 60) -> None:
    """Wait (up to ``patience`` s) until no session but ours is on ``dbname``."""
    deadline = time.monotonic() + patience
    while other_sessions(conn, dbname) and time.monotonic() < deadline:
        time.sleep(0.01)


def child_env(
    server: Server, dbname: str, frozen_now: str | None = None, *, admin: bool = False
) -> dict[str, str]:
    """The environment of a child on ``dbname``: as the application role (the
    jobs), or as the admin role (migrations, grants)."""
    env = {
        **os.environ,
        "DATABASE_URL": server.url(dbname, server.admin if admin else server.app),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("FROZEN_NOW", None)
    env.pop("TIME_LAPSE", None)
    env.pop("DATABASE_OWNER_URL", None)
    if server.two_roles:
        env["DATABASE_OWNER_URL"] = server.url(dbname, server.admin)
    if frozen_now:
        env["FROZEN_NOW"] = frozen_now
    return env


def make_base(server: Server, dbname: str) -> None:
    """A migrated, empty database, its tables granted to the application role
    as ``./bin/test`` grants the test database's."""
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    env = child_env(server, dbname, admin=True)
    run_child([PYTHON, "manage.py", "migrate", "--noinput"], env)
    if server.two_roles:
        run_child(
            [
                PYTHON,
                "manage.py",
                "create_roles",
                "--owner",
                server.admin.user,
                "--app",
                server.app.user,
                "--verbosity",
                "0",
            ],
            env,
        )


def record_world(server: Server, dbname: str, job: PayoutJob, owed: list[list[str]]) -> dict:
    """Write what the world owes (``reliability_owed``) and the payable items
    its program recorded (``reliability_items``) into it, and check the two
    agree to the last digit; returns the world's figures."""
    with server.connect(dbname) as conn:
        conn.execute(
            "CREATE TABLE reliability_owed (user_id text, asset text, account_kind text,"
            " amount numeric, fractional boolean, PRIMARY KEY (user_id, asset, account_kind))"
        )
        with conn.cursor() as cursor, cursor.copy("COPY reliability_owed FROM STDIN") as copy:
            for user, asset, kind, amount in owed:
                value = Decimal(amount)
                copy.write_row((user, asset, kind, value, value != value.quantize(UNIT)))
        conn.execute(
            "CREATE TABLE reliability_items AS SELECT * FROM"  # noqa: S608 - the suite's own SQL
            f" ({job.items_sql}) AS i(item_id, user_id, asset, account_kind, amount)"
        )
        conn.execute("CREATE UNIQUE INDEX reliability_items_id ON reliability_items (item_id)")
        (disagree,) = _one(
            conn,
            """
            SELECT count(*) FROM reliability_owed o FULL JOIN (
                SELECT user_id, asset, account_kind, sum(amount) AS amount FROM reliability_items
                GROUP BY 1, 2, 3
            ) i USING (user_id, asset, account_kind)
            WHERE o.amount IS DISTINCT FROM i.amount
            """,
        )
        if disagree:
            raise RuntimeError(
                f"{job.name}: the program recorded other amounts than the world owes for"
                f" {disagree} users"
            )
        items, total, users = _one(
            conn, "SELECT count(*), sum(amount), count(DISTINCT user_id) FROM reliability_items"
        )
        (fractional,) = _one(conn, "SELECT count(*) FROM reliability_owed WHERE fractional")
        conn.execute("ANALYZE")
    return {"items": items, "owed": total, "users": users, "fractional_users": fractional}


def run_child(argv: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """Run a child to the end; its stdout, or an error with its output."""
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[1:])} exited {result.returncode}:\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-5000:]}"
        )
    return result.stdout


# --- job processes ---------------------------------------------------------------------


@dataclass
class Run:
    """One ``manage.py run_job`` process."""

    key: str
    offset: float  # seconds after the trial began that it was started
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    started: float  # time.monotonic()
    ended: float | None = None
    killed: bool = False
    stdout: str = ""
    stderr: str = ""

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def finish(self, timeout: float = 600) -> None:
        self.proc.wait(timeout=timeout)
        if self.ended is None:
            self.ended = time.monotonic()
        for stream in (self.out, self.err):
            stream.seek(0)
        self.stdout = self.out.read().decode(errors="replace")
        self.stderr = self.err.read().decode(errors="replace")
        self.out.close()
        self.err.close()

    @property
    def skipped(self) -> bool:
        """Refused because another run of the same key held the job's lock."""
        return self.returncode == 1 and "skipped" in self.stderr

    def describe(self) -> str:
        tail = (self.stderr.strip() or self.stdout.strip())[-1500:]
        return f"run --{self.key} exited {self.returncode}: {tail}"


def start_run(job: PayoutJob, key: str, env: dict[str, str], offset: float = 0.0) -> Run:
    # Files, not pipes: a chatty child never blocks on a full pipe. Closed by Run.finish.
    out = tempfile.TemporaryFile()  # noqa: SIM115
    err = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [PYTHON, "manage.py", "run_job", job.job, f"--{job.key}", key],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
    )
    return Run(key, offset, proc, out, err, started=time.monotonic())


def race(
    job: PayoutJob, keys: tuple[str, ...], env: dict[str, str], rng: random.Random
) -> list[Run]:
    """Start one run per key, in a random order, the first at once and each
    other after a random offset of 0-2 s; wait for all."""
    order = rng.sample(keys, len(keys))
    offsets = [(0.0, order[0]), *sorted((rng.uniform(0.0, 2.0), key) for key in order[1:])]
    began = time.monotonic()
    runs = []
    for offset, key in offsets:
        time.sleep(max(0.0, began + offset - time.monotonic()))
        runs.append(start_run(job, key, env, offset))
    pending = list(runs)
    while pending:
        for run in list(pending):
            if run.proc.poll() is not None:
                run.ended = time.monotonic()
                pending.remove(run)
        time.sleep(0.01)
    for run in runs:
        run.finish()
    return runs


def overlapped(runs: list[Run]) -> bool:
    """Whether the processes' lifetimes overlapped (an upper bound on the jobs')."""
    first, *rest = sorted(runs, key=lambda r: r.started)
    return any(r.started < (first.ended or 0) for r in rest)


def kill(run: Run) -> None:
    run.proc.send_signal(signal.SIGKILL)
    run.killed = True
    run.finish()


def other_sessions(conn: psycopg.Connection[Any], dbname: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        [dbname],
    ).fetchone()
    return int(row[0]) if row else 0


def wait_for_sessions_gone(server: Server, dbname: str, timeout: float = 120) -> float:
    """Wait until no session but ours is connected to ``dbname`` (a killed
    runner's backend ends once it notices its client is gone); the seconds waited."""
    started = time.monotonic()
    with server.connect() as conn:
        while other_sessions(conn, dbname):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"sessions of a killed run still open on {dbname}")
            time.sleep(0.02)
    return time.monotonic() - started


# --- ledger_verify, in one long-lived process ------------------------------------------


class Verifier:
    """``verify_ledger`` of any trial database: the command itself, called in one
    long-lived Django process that switches database per request (a new process
    per trial would add two seconds of start-up to each)."""

    def __init__(self, server: Server) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.reliability.verifier"],
            cwd=ROOT,
            env=child_env(server, server.name("base")),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def verify(self, dbname: str) -> tuple[int, str]:
        """(exit status the command would give, its output)."""
        self.request(dbname)
        return self.result()

    def request(self, dbname: str) -> None:
        """Start verifying ``dbname``; :meth:`result` waits for the answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(dbname + "\n")
        self.proc.stdin.flush()

    def result(self) -> tuple[int, str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the verify_ledger process ended")
        answer = json.loads(line)
        return int(answer["code"]), str(answer["output"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --- the checks ------------------------------------------------------------------------


@dataclass
class Money:
    """What one trial's copy holds, against what its world owes."""

    owed: Decimal = Decimal(0)
    credited: Decimal = Decimal(0)
    credits: int = 0
    items: int = 0  # payable items owed (the program's record before the run)
    items_paid: int = 0  # of them, tied to a credit (ledger_paiditem)
    tracked: bool = False  # whether the job records paid items
    overpaid_users: int = 0
    overpaid_amount: Decimal = Decimal(0)
    underpaid_users: int = 0
    duplicate_items: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def doubles(self) -> int:
        """Money paid twice, however it shows: users credited more than owed,
        items tied to two credits."""
        return self.overpaid_users + self.duplicate_items


def _one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return bool(_one(conn, "SELECT to_regclass(%s) IS NOT NULL", [name])[0])


def check_money(conn: psycopg.Connection[Any], job: PayoutJob, payers: list[str]) -> Money:
    """Compare the credits of ``job``'s kinds with what the world owes.

    Per user, asset and account: credited = owed where every item the user is
    owed is whole in the asset's unit; where some are finer, each credit
    rounds its sum down once, so credited <= owed < credited + credits x unit.
    ``payers`` are the ledger.payables payers of the job's items (none when
    the job does not record paid items): then every owed item is tied to
    exactly one credit, nothing else is, and each credit is its items' sum
    rounded down once."""
    kinds = list(job.credit_kinds)
    money = Money()
    # The runs just wrote these tables and nothing has analysed them: the
    # planner takes them for nearly empty and would join them in nested loops
    # (a minute and more). Hash joins, without touching the statistics
    # verify_ledger plans with.
    conn.execute("SET enable_nestloop = off")
    conn.execute(
        """
        CREATE TEMP TABLE credited AS
        SELECT a.user_id, a.asset, a.user_kind AS account_kind, sum(p.amount) AS amount,
            count(*) AS credits
        FROM ledger_posting p
        JOIN ledger_account a ON a.id = p.account_id
        JOIN ledger_ledgertransaction t ON t.id = p.transaction_id
        WHERE a.kind = 'user' AND t.kind = ANY(%s)
        GROUP BY 1, 2, 3
        """,
        [kinds],
    )
    (
        money.owed,
        money.credited,
        money.credits,
        money.overpaid_users,
        money.overpaid_amount,
        money.underpaid_users,
    ) = _one(
        conn,
        """
        WITH cmp AS (
            SELECT coalesce(o.amount, 0) AS owed, coalesce(c.amount, 0) AS credited,
                coalesce(c.credits, 0) AS credits, coalesce(o.fractional, false) AS fractional
            FROM reliability_owed o FULL JOIN credited c USING (user_id, asset, account_kind)
        )
        SELECT coalesce(sum(owed), 0), coalesce(sum(credited), 0), coalesce(sum(credits), 0),
            count(*) FILTER (WHERE credited > owed),
            coalesce(sum(credited - owed) FILTER (WHERE credited > owed), 0),
            count(*) FILTER (WHERE credited < owed AND (NOT fractional
                                                       OR owed - credited >= credits * %s))
        FROM cmp
        """,
        [UNIT],
    )
    if money.overpaid_users:
        money.problems.append(
            f"{money.overpaid_users} users credited more than owed,"
            f" {money.overpaid_amount} in excess"
        )
    if money.underpaid_users:
        money.problems.append(f"{money.underpaid_users} users credited less than owed")
    (mismatched,) = _one(
        conn,
        """
        SELECT count(*) FROM credited c FULL JOIN (
            SELECT user_id, asset, account_kind, sum(amount) AS amount FROM ledger_payoutinstruction
            WHERE kind = ANY(%s) GROUP BY 1, 2, 3
        ) o USING (user_id, asset, account_kind)
        WHERE c.amount IS DISTINCT FROM o.amount
        """,
        [kinds],
    )
    if mismatched:
        money.problems.append(f"{mismatched} users' payout instructions differ from their credits")
    (money.items,) = _one(conn, "SELECT count(*) FROM reliability_items")
    money.tracked = bool(payers) and _table_exists(conn, "ledger_paiditem")
    if money.tracked:
        _check_paid_items(conn, job, payers, money)
    conn.execute("DROP TABLE credited")
    return money


def _check_paid_items(
    conn: psycopg.Connection[Any], job: PayoutJob, payers: list[str], money: Money
) -> None:
    (money.duplicate_items,) = _one(
        conn,
        "SELECT count(*) FROM (SELECT 1 FROM ledger_paiditem GROUP BY payer, item_id"
        " HAVING count(*) > 1) d",
    )
    if money.duplicate_items:
        money.problems.append(f"{money.duplicate_items} items paid more than once")
    money.items_paid, unpaid, stranger, wrong = _one(
        conn,
        """
        WITH paid AS (SELECT * FROM ledger_paiditem WHERE payer = ANY(%(payers)s))
        SELECT
            (SELECT count(*) FROM reliability_items r
             WHERE EXISTS (SELECT 1 FROM paid p WHERE p.item_id = r.item_id)),
            (SELECT count(*) FROM reliability_items r
             WHERE NOT EXISTS (SELECT 1 FROM paid p WHERE p.item_id = r.item_id)),
            (SELECT count(*) FROM paid p
             WHERE NOT EXISTS (SELECT 1 FROM reliability_items r WHERE r.item_id = p.item_id)),
            (SELECT count(*) FROM paid p JOIN reliability_items r ON r.item_id = p.item_id
             WHERE p.amount <> r.amount OR p.user_id <> r.user_id)
        """,
        {"payers": payers},
    )
    if unpaid:
        money.problems.append(f"{unpaid} owed items not paid")
    if stranger:
        money.problems.append(f"{stranger} paid items that were not owed")
    if wrong:
        money.problems.append(f"{wrong} paid items with another amount or user than recorded")
    # Each credit is the sum of the items tied to it, rounded down once.
    (unrounded,) = _one(
        conn,
        """
        SELECT count(*) FROM ledger_ledgertransaction t
        JOIN ledger_posting p ON p.transaction_id = t.id
        JOIN ledger_account a ON a.id = p.account_id AND a.kind = 'user'
        LEFT JOIN (SELECT transaction_id, sum(amount) AS owed FROM ledger_paiditem
                   GROUP BY transaction_id) i ON i.transaction_id = t.id
        WHERE t.kind = ANY(%s) AND (i.owed IS NULL OR p.amount <> trunc(i.owed, 8))
        """,
        [list(job.credit_kinds)],
    )
    if unrounded:
        money.problems.append(
            f"{unrounded} credits are not the sum of their paid items rounded down once"
        )


def assess(
    server: Server,
    verifier: Verifier,
    job: PayoutJob,
    payers: list[str],
    dbname: str,
    runs: list[Run],
) -> tuple[Money, list[str], dict[int, str]]:
    """Everything one trial must satisfy: each run that was not killed ended
    well (or was skipped because the same key was running), the money checks,
    ``verify_ledger`` clean. Returns the money, the problems, the job's runs."""
    problems = [
        run.describe() for run in runs if not run.killed and run.returncode != 0 and not run.skipped
    ]
    verifier.request(dbname)  # beside the checks below, in its own process
    with server.connect(dbname) as conn:
        money = check_money(conn, job, payers)
        statuses = run_statuses(conn, job)
    code, output = verifier.result()
    if code:
        breaches = [line for line in output.splitlines() if not line.startswith("ok")]
        problems.append("verify_ledger exit 1: " + " | ".join(breaches)[:3000])
    return money, problems + money.problems, statuses


def paid_so_far(conn: psycopg.Connection[Any], job: PayoutJob) -> tuple[int, Decimal, Decimal]:
    """(credits, amount credited, amount owed) of ``job``'s kinds, cheaply (no ANALYZE)."""
    credits, credited = _one(
        conn,
        "SELECT count(*), coalesce(sum(p.amount), 0) FROM ledger_ledgertransaction t"
        " JOIN ledger_posting p ON p.transaction_id = t.id"
        " JOIN ledger_account a ON a.id = p.account_id AND a.kind = 'user'"
        " WHERE t.kind = ANY(%s)",
        [list(job.credit_kinds)],
    )
    (owed,) = _one(conn, "SELECT coalesce(sum(amount), 0) FROM reliability_owed")
    return int(credits), Decimal(credited), Decimal(owed)


def run_statuses(conn: psycopg.Connection[Any], job: PayoutJob) -> dict[int, str]:
    return {
        int(pk): str(status)
        for pk, status in conn.execute(
            "SELECT id, status FROM jobs_jobrun WHERE job = %s ORDER BY id", [job.job]
        )
    }


def supports_abandoned(conn: psycopg.Connection[Any]) -> bool:
    """Whether this schema records abandoned runs (a runner's session on its run)."""
    return bool(
        _one(
            conn,
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
            " WHERE table_name = 'jobs_jobrun' AND column_name = 'backend_pid')",
        )[0]
    )


# --- what the suites measured ----------------------------------------------------------


@dataclass
class Tally:
    """One job's figures for the summary (and docs/reliability.md)."""

    job: str
    suite: str
    trials: int = 0
    items: int = 0
    credits: int = 0
    amount: Decimal = Decimal(0)
    doubles: int = 0
    failed_trials: int = 0
    overlapped: int = 0
    skipped_runs: int = 0
    tracked: bool = False
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"{self.suite:5} {self.job:10} trials {self.trials:3}  items/trial {self.items:6,}"
            f"  credits {self.credits:8,}  paid {self.amount:,.8f}  doubles {self.doubles}"
            f"  failed trials {self.failed_trials}  {self.seconds:.0f} s"
        )
        if self.suite == "race":
            text += f"  overlapped {self.overlapped}  skipped runs {self.skipped_runs}"
        if self.outcomes:
            text += "  kills: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        if not self.tracked:
            text += "  (paid items not recorded by this job)"
        return text


TALLIES: list[Tally] = []
# world name -> what its builder reported (items, users, owed, seconds)
WORLDS: dict[str, dict[str, Any]] = {}
