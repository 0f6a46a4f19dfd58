"""Pure logic of the engine-host helper: its shell script and how its output is read."""

from __future__ import annotations

from loon_supervisor.engine.remote_paths import helper_script, interpret


def test_helper_script_binds_each_parent_and_quotes_names() -> None:
    script = helper_script(["/srv/a", "/srv/b c/"], ["/etc/x/cert.pem"])
    assert "'/loon-paths/1/b c'" in script and "/loon-paths/f0/cert.pem" in script
    assert script.count("mkdir") == 2


def test_helper_output_becomes_messages_and_problems() -> None:
    dirs = [("m.src", "/srv/a"), ("n.src", "/srv/b c"), ("o.src", "/srv/d"), ("p.src", "/srv/e")]
    said, problems = interpret("d0 created\nd1 notdir\nd3 exists\nf0 missing\n", dirs,
                               [("nginx.cert", "/etc/x/cert.pem")], "ssh://srv")
    assert said == ["created /srv/a on the engine's machine (ssh://srv) (m.src)"]
    assert [p.path for p in problems] == ["n.src", "o.src", "nginx.cert"]
    assert "not a directory" in str(problems[0]) and "cannot be created" in str(problems[1])
