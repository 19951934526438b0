"""One CLI vocabulary (issue 14, part 5): every config field is an option and a config-file key,
``--dump-config`` writes what ``--config`` reads, every option's help shows its default, old
spellings still work with a warning, and a bad file is one line naming the file and the key."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from gecko_distill.cli import main
from gecko_distill.cli.main import _parser
from gecko_distill.config import FRetConfig, GenerateConfig
from gecko_distill.embedder.train import TrainConfig

PREFIX = "gecko-distill: error: "

#: A command line of each command that has configs (paths need not exist: --dump-config reads none).
COMMANDS = {
    "build-fret": ["build-fret", "corpus.jsonl", "--out", "o"],
    "run": ["run", "corpus.jsonl", "--out", "o"],
    "train": ["train", "fret", "--out", "m"],
    "eval": ["eval", "default", "beir"],
    "pretrain": ["pretrain", "corpus.jsonl", "--out", "p"],
}

#: Settings away from the defaults, given on the command line, for each command.
CHANGED = {
    "build-fret": [
        "--llm",
        "fake",
        "--limit",
        "5",
        "--top-n",
        "4",
        "--generate.seed",
        "3",
        "--relabel.max-negative-uses",
        "none",
        "--round1.enabled",
        "false",
        "--queries-per-passage",
        "2",
    ],
    "run": [
        "--llm",
        "fake",
        "--top-n",
        "6",
        "--epochs",
        "1",
        "--lr",
        "1e-5",
        "--dims",
        "384",
        "64",
        "--train.self-check.seed",
        "7",
        "--split",
        "dev",
        "--no-pretrain",
        "--train.mix-ratios",
        "fret=1",
        "synth=0.5",
    ],
    "train": [
        "--max-steps",
        "3",
        "--input-format",
        "plain",
        "--eval",
        "beir",
        "--eval-steps",
        "5",
        "--train.self-check.blend-alphas",
        "1.0",
        "0.5",
    ],
    "eval": ["--dims", "384", "--input-format", "e5", "--task", "find it", "--batch-size", "8", "--label", "x"],
    "pretrain": ["--epochs", "2", "--min-pairs", "8", "--base-model", "some/model"],
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    lines = [
        {"_id": f"d{i}", "title": "Geckos", "text": f"Passage {i}: geckos climb glass walls with {i + 2} toes."} for i in range(8)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def dump(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main([*argv, "--dump-config"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(PREFIX)
    return err[0][len(PREFIX) :]


# -- config files ---------------------------------------------------------------------------------
def test_a_toml_config_reproduces_a_run(corpus, tmp_path, capsys):
    options = [
        "--llm",
        "fake",
        "--limit",
        "6",
        "--top-n",
        "4",
        "--generate.seed",
        "3",
        "--relabel.negative",
        "random",
        "--relabel.max-negative-uses",
        "none",
        "--retrieve.input-format",
        "plain",
    ]
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "cli"), *options]) == 0
    settings = tmp_path / "run.toml"
    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "x"), *options, "--dump-config", str(settings)]) == 0
    assert not (tmp_path / "x").exists()  # --dump-config does nothing else
    capsys.readouterr()

    assert main(["build-fret", str(corpus), "--out", str(tmp_path / "file"), "--config", str(settings)]) == 0
    by_cli, by_file = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("cli", "file"))
    assert by_file["config"] == by_cli["config"]
    assert by_file["config"]["relabel"]["max_negative_uses"] is None and by_file["config"]["generate"]["seed"] == 3
    assert by_file["counts"] == by_cli["counts"] == {"passages": 6, "examples": by_cli["counts"]["examples"]}
    assert (tmp_path / "file" / "fret.jsonl").read_text() == (tmp_path / "cli" / "fret.jsonl").read_text()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_dump_config_round_trips(command, tmp_path, capsys):
    argv = COMMANDS[command]
    first = dump([*argv, *CHANGED[command]], capsys)
    assert first != dump(argv, capsys)  # the changes show
    (tmp_path / "run.toml").write_text(first)
    again = dump([*argv, "--config", str(tmp_path / "run.toml")], capsys)
    assert again == first


def loads(text: str) -> dict:
    """TOML text, with the ``"none"`` of unset fields as ``None``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    def unset(value):
        if isinstance(value, dict):
            return {k: unset(v) for k, v in value.items()}
        return None if value == "none" else value

    return unset(tomllib.loads(text))


def test_the_dump_is_the_effective_config(capsys):
    dumped = loads(dump([*COMMANDS["run"], *CHANGED["run"]], capsys))
    fret = FRetConfig.model_validate({k: dumped[k] for k in FRetConfig.model_fields})
    assert fret == FRetConfig(retrieve={"top_n": 6})
    train = TrainConfig.model_validate(dumped["train"])
    assert train == TrainConfig(
        epochs=1, learning_rate=1e-5, matryoshka_dims=(384, 64), self_check={"seed": 7}, mix_ratios={"fret": 1.0, "synth": 0.5}
    )
    assert dumped["llm"] == "fake" and dumped["no_pretrain"] is True and dumped["evaluation"]["split"] == "dev"
    assert "input_format" not in dumped["evaluation"]  # run evaluates each model in its own format


def test_the_command_line_wins_over_the_file(tmp_path, capsys):
    (tmp_path / "run.toml").write_text('llm = "fake"\nlimit = 3\n[retrieve]\ntop_n = 8\nindex = "flat"\n')
    text = dump([*COMMANDS["build-fret"], "--config", str(tmp_path / "run.toml"), "--top-n", "5", "--limit", "4"], capsys)
    assert "top_n = 5\n" in text and "limit = 4\n" in text and 'index = "flat"' in text and 'llm = "fake"' in text


def test_cli_and_api_pick_the_same_sampling_temperature(capsys):
    dumped = loads(dump([*COMMANDS["build-fret"], "--queries-per-passage", "2"], capsys))
    assert dumped["generate"]["temperature"] == GenerateConfig(queries_per_passage=2).temperature == 0.7
    assert loads(dump(COMMANDS["build-fret"], capsys))["generate"]["temperature"] == GenerateConfig().temperature == 0


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[retrieve]\ntop_m = 3\n", ["unknown setting 'retrieve.top_m'", "did you mean 'retrieve.top_n'?"]),
        ("lmit = 3\n", ["unknown setting 'lmit'", "'limit'"]),
        ("[retrieve]\ntop_n = 'many'\n", ["retrieve.top_n = 'many'"]),
        ("[retrieve]\ntop_n = 2\n", ["retrieve.top_n = 2: at least 3 candidates"]),
        ("[relabel]\nrank_by = 'best'\n", ["relabel.rank_by = 'best': choose from auto, rrf"]),
        ("[retrieve]\ntop_n = [3, 4]\n", ["retrieve.top_n = [3, 4]: expected one value"]),
        ("[retrieve\ntop_n = 3\n", ["not valid TOML", "line 1"]),
        ("out = 'elsewhere'\n", ["unknown setting 'out'"]),  # where a run writes is never in a settings file
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(content, named, tmp_path, capsys):
    settings = tmp_path / "run.toml"
    settings.write_text(content)
    out = tmp_path / "o"
    assert main(["build-fret", str(tmp_path / "missing.jsonl"), "--out", str(out), "--config", str(settings)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"{settings}: ") or line.startswith(f"invalid option: {settings}: "), line
    assert all(part in line for part in named), line
    assert not out.exists()


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    assert main([*COMMANDS["train"], "--config", str(tmp_path / "nope.toml")]) == 2
    assert one_error_line(capsys) == f"{tmp_path / 'nope.toml'}: config file not found"


# -- options -------------------------------------------------------------------------------------
def option_names(parser: argparse.ArgumentParser) -> set[str]:
    return {name for action in parser._actions for name in action.option_strings}


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            paths += field_paths(info.annotation, f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def subcommands() -> dict[str, argparse.ArgumentParser]:
    return dict(_parser()._subparsers._group_actions[0].choices)


@pytest.mark.parametrize(
    ("command", "model", "prefix"),
    [
        ("build-fret", FRetConfig, ""),
        ("run", FRetConfig, ""),
        ("train", TrainConfig, "train."),
        ("run", TrainConfig, "train."),
    ],
)
def test_every_config_field_is_an_option(command, model, prefix):
    names = option_names(subcommands()[command])
    paths = field_paths(model)
    assert len(paths) > 15
    missing = [path for path in paths if "--" + (prefix + path).replace("_", "-") not in names]
    assert not missing


def help_entries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help entry, by its first name, whitespace normalised."""
    entries: dict[str, str] = {}
    current = None
    for line in parser.format_help().splitlines():
        start = re.match(r"^  (-[\w.-]+)", line)
        if start:
            current = start.group(1)
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {name: " ".join(text.split()) for name, text in entries.items()}


def test_every_option_shows_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    checked = 0
    for name, parser in subcommands().items():
        entries = help_entries(parser)
        required = {a.option_strings[0] for a in parser._actions if a.required and a.option_strings}
        for option, text in entries.items():
            if option in ("-h", *required):
                continue
            assert "(default: " in text, f"{name} {option}: {text}"
            checked += 1
    assert checked > 150
    for option, default in (("--epochs", "3.0"), ("--lr", "5e-05")):
        assert f"(default: {default})" in help_entries(subcommands()["train"])[option]


def test_the_help_check_can_fail():
    from gecko_distill.cli.options import HelpFormatter

    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--hidden", default=argparse.SUPPRESS, help="a default nobody sees")
    parser.add_argument("--shown", default=3, help="a default everybody sees")
    entries = help_entries(parser)
    assert "(default: " not in entries["--hidden"] and "(default: 3)" in entries["--shown"]


# -- one name for one thing ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "old", "new", "expected"),
    [
        ([*COMMANDS["eval"], "--format", "plain"], "--format", "--input-format", 'input_format = "plain"'),
        ([*COMMANDS["train"], "--query-format", "e5"], "--query-format", "--input-format", 'query_format = "e5"'),
        ([*COMMANDS["train"], "--validate-on", "beir"], "--validate-on", "--eval", 'eval = "beir"'),
        ([*COMMANDS["pretrain"], "--query-format", "gecko"], "--query-format", "--input-format", 'query_format = "gecko"'),
    ],
)
def test_old_spellings_still_work_with_a_warning(argv, old, new, expected, capsys, caplog):
    assert expected in dump(argv, capsys)
    assert f"{old} is deprecated; use {new}" in caplog.text


def test_old_spellings_are_not_in_the_help():
    for name, parser in subcommands().items():
        text = parser.format_help()
        for old in ("--query-format", "--validate-on", "--format ", "--plot"):
            assert old not in text, (name, old)


def test_eval_writes_json_and_png_with_the_new_and_old_names():
    args = _parser().parse_args(["eval", "default", "beir", "--json", "r.json", "--png", "r.png"])
    old = _parser().parse_args(["eval", "default", "beir", "--out", "r.json", "--plot", "r.png"])
    assert (args.json, args.png) == (old.json, old.png) == ("r.json", "r.png")
    assert _parser().parse_args(["plot", "a.json", "--out", "p.png"]).png == "p.png"


def test_an_invalid_option_names_it_as_typed(capsys):
    assert main([*COMMANDS["build-fret"], "--retrieve.top-n", "2"]) == 2
    assert one_error_line(capsys).startswith("invalid option: --retrieve.top-n 2: at least 3 candidates")
    assert main([*COMMANDS["train"], "--train.self-check.holdout-fraction", "0.9"]) == 2
    assert one_error_line(capsys).startswith("invalid option: --train.self-check.holdout-fraction 0.9: ")
    with pytest.raises(SystemExit) as exit_:  # a value of the wrong type: argparse's own usage error
        main([*COMMANDS["build-fret"], "--round1.enabled", "maybe"])
    assert exit_.value.code == 2 and "expected true or false" in capsys.readouterr().err
