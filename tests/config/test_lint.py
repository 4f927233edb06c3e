"""``check-config --strict`` findings read as the other config errors do."""

from __future__ import annotations

from ratekeeper.config.lint import Finding


def test_a_finding_names_file_line_and_key() -> None:
    finding = Finding("api.yaml", 7, "api.user", "no limit and no children")
    assert str(finding) == "api.yaml:7: api.user: no limit and no children"


def test_a_finding_without_a_file_has_no_placeholder_prefix() -> None:
    # a tree built in memory (PolicyTree.from_mapping) has no file: no "<config>:" stands in
    assert str(Finding(None, None, "d.k", "no limit")) == "d.k: no limit"
