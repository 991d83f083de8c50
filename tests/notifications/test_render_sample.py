"""The template preview (docs/deliveries.md, "Run it") renders the small world's digest."""

from tests.notifications.render_sample import REPO, main


def test_render_sample_writes_a_digest_and_a_critical_email(tmp_path, capsys):
    out = tmp_path / "digest.html"
    main(["--out", str(out), "--recipient", "ana@example.com"])
    written = capsys.readouterr().out.split()
    assert written == [
        str(out),
        str(out.with_suffix(".txt")),
        str(tmp_path / "digest_critical.html"),
    ]
    assert (
        "Acme Logistics" in out.read_text()
        and "Acme Logistics" in out.with_suffix(".txt").read_text()
    )
    assert (REPO / "config" / "templates" / "email").is_dir()
