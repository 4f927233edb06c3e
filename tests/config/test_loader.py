"""load_config: files and directories, merged domains, atomic failure, the shipped default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ratekeeper.config import config_files, default_config_path, load_config
from ratekeeper.core.limits import Algorithm
from ratekeeper.errors import ConfigError

from .conftest import DATA

_POLICY = "domain: {domain}\ndescriptors:\n  - key: {key}\n    rate_limit: {{unit: second}}\n"


def _write(path: Path, domain: str = "d", key: str = "k") -> Path:
    path.write_text(_POLICY.format(domain=domain, key=key))
    return path


def test_a_single_file(tmp_path: Path) -> None:
    tree = load_config(_write(tmp_path / "one.yml"))
    assert tree.domains == ("d",)


def test_a_directory_reads_yaml_files_in_name_order_skipping_the_rest(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", "second")
    _write(tmp_path / "a.yml", "first")
    _write(tmp_path / ".hidden.yaml", "hidden")
    _write(tmp_path / "notes.txt", "text")
    (tmp_path / "sub.yaml").mkdir()
    _write(tmp_path / "sub.yaml" / "nested.yaml", "nested")
    assert [path.name for path in config_files(tmp_path)] == ["a.yml", "b.yaml"]
    assert load_config(tmp_path).domains == ("first", "second")


def test_missing_path() -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        load_config(DATA / "absent")


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe domain")
    with pytest.raises(ConfigError, match="cannot read config file") as caught:
        load_config(path)
    assert caught.value.file == str(path)


def test_duplicate_domain_across_files_names_the_second_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(DATA / "merge")
    assert "duplicate domain 'merged' in config file" in caught.value.reason
    assert caught.value.file == str(DATA / "merge" / "b.yaml")
    assert caught.value.line == 1


def test_merge_domains_joins_descriptors() -> None:
    tree = load_config(DATA / "merge", merge_domains=True)
    assert tree.domains == ("merged",)
    assert tree.match("merged", [("from_a", "x")]) is not None
    assert tree.match("merged", [("from_b", "x")]) is not None


def test_merge_domains_still_rejects_duplicate_composite_keys(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "d", "same")
    _write(tmp_path / "b.yaml", "d", "same")
    with pytest.raises(
        ConfigError, match=r"duplicate descriptor composite key 'd\.same'"
    ) as caught:
        load_config(tmp_path, merge_domains=True)
    assert caught.value.file == str(tmp_path / "b.yaml")
    assert caught.value.line == 3


def test_one_bad_file_fails_the_whole_load(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "good")
    (tmp_path / "b.yaml").write_text("domain: bad\ndescriptors:\n  - key: k\n    typo: 1\n")
    with pytest.raises(ConfigError, match="unknown key 'typo'") as caught:
        load_config(tmp_path)
    assert (caught.value.file, caught.value.line, caught.value.key) == (
        str(tmp_path / "b.yaml"),
        4,
        "typo",
    )


def test_syntax_error_has_the_parser_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("domain: d\ndescriptors:\n  - key: k\n   value: misaligned\n")
    with pytest.raises(ConfigError, match="error loading config file") as caught:
        load_config(path)
    assert caught.value.line == 4


def test_algorithm_override(tmp_path: Path) -> None:
    tree = load_config(_write(tmp_path / "p.yaml"), algorithm=Algorithm.FIXED_WINDOW)
    assert [limit.algorithm for rule in tree.rules() for limit in rule.limits] == [
        Algorithm.FIXED_WINDOW
    ]


def test_the_shipped_default_loads_and_matches_the_example(tmp_path: Path) -> None:
    default = default_config_path()
    assert sorted(path.name for path in config_files(default)) == ["api.yaml", "rl.yaml"]
    tree = load_config(default)
    assert set(tree.domains) == {"api", "rl"}
    daily = tree.match("api", [("api_key", "abc")])
    assert daily is not None
    assert len(daily.rule.limits) == 2
    examples = Path(__file__).parents[2] / "examples" / "config"
    assert load_config(examples) == tree
    copy = shutil.copytree(default, tmp_path / "copy")
    assert load_config(copy).domains == tree.domains
