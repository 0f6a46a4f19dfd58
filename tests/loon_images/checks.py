"""Checks both image modules run against their deployment (tests/loon_images/support.py)."""

from __future__ import annotations

import re
import time

from tests.loon_images.support import (
    Loon,
    assert_gone,
    assert_logs_match,
    duckdb_query,
    duckdb_ws_query,
    image_labels,
    mariadb,
    mariadb_ok,
    redis_ping,
    retry,
)


def check_labels(loon: Loon, tag: str, kind: str, services: list[str]) -> None:
    labels = image_labels(tag)
    assert labels.get("org.loon.image-kind") == kind
    assert labels.get("org.loon.services", "").split(",") == services
    assert labels.get("org.loon.log-dir") == "/var/log/loon"
    assert "minio" not in labels["org.loon.services"].split(",")


def check_mysql_login(loon: Loon) -> None:
    db = loon.mysql["databaseName"]
    out = retry(lambda: mariadb_ok(loon, "SHOW DATABASES"), timeout=90)
    assert db in out.split(), f"database {db} not visible to {loon.mysql['databaseUser']}: {out}"
    who = mariadb_ok(loon, "SELECT CURRENT_USER(), DATABASE()", database=db)
    assert who.split() == [f"{loon.mysql['databaseUser']}@%", db], who
    # the password really is checked
    code, out = mariadb(loon, "SELECT 1", password=loon.mysql["databasePassword"] + "x")
    assert code != 0 and "Access denied" in out, out
    # and root has the configured password, not none
    code, out = mariadb(loon, "SELECT 1", user="root", password="")
    assert code != 0, "root logs in without a password"
    mariadb_ok(loon, "SELECT 1", user="root", password=loon.mysql["databaseRootPassword"])


def check_redis() -> None:
    assert retry(redis_ping, timeout=60).startswith(b"+PONG")


def check_row_survives_down_up(loon: Loon, services: list[str]) -> None:
    """Data safety: a row written to MySQL survives `-D` and a new `up` on the same volume."""
    db = loon.mysql["databaseName"]
    mariadb_ok(loon, "CREATE TABLE ci_survivor (id INT PRIMARY KEY, note VARCHAR(64)); "
                     "INSERT INTO ci_survivor VALUES (1, 'written before -D')", database=db)
    first = loon.session()

    down = loon.down()
    assert down.returncode == 0, down.stdout + down.stderr
    assert_gone(loon.name)
    # the stop was clean (not a kill) and the log file got the server's last lines
    assert re.search(r"Shutdown complete", (first / "mysql.log").read_text(errors="replace")), \
        "MariaDB did not shut down cleanly within stopTimeout"

    loon.up()
    assert loon.session() != first, "the new up wrote into the old session"
    rows = retry(lambda: mariadb_ok(loon, "SELECT id, note FROM ci_survivor", database=db),
                 timeout=90)
    assert rows.strip().split("\t") == ["1", "written before -D"], rows
    mysql_log = (loon.session() / "mysql.log").read_text(errors="replace")
    assert "using the existing data directory" in mysql_log, mysql_log[-2000:]
    assert_logs_match(loon, services)


def check_duckdb(via_nginx: str, via_nginx_ws: str) -> None:
    """Directly on its port, through nginx at /ws over HTTP, and over the WebSocket the
    Mosaic client uses."""
    rows = retry(lambda: duckdb_query("http://127.0.0.1:3000/", "SELECT 42 AS x"))
    assert rows == [{"x": 42}]
    assert duckdb_query(via_nginx, "SELECT 'via nginx' AS s") == [{"s": "via nginx"}]
    assert duckdb_ws_query(via_nginx_ws, "SELECT 7 * 6 AS y") == [{"y": 42}]


def check_logs(loon: Loon, services: list[str]) -> None:
    time.sleep(0.5)
    assert_logs_match(loon, services)


def ok(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], bytes]:
    assert answer[0] == 200, answer
    return answer
