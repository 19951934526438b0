import json

import pytest

from gecko_distill import InputError, Passage, load_passages


def write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_strings_get_ids_and_blank_or_duplicate_passages_are_counted_skips(caplog):
    result = load_passages(["Geckos climb glass.", "   ", "Geckos  climb glass.", "Lizards bask in the sun."])
    assert [p.id for p in result.records] == ["p0", "p3"]
    assert result.skip_counts == {"empty_text": 1, "duplicate_text": 1}
    assert result.stats == {"read": 4, "passages": 2, "skipped": {"empty_text": 1, "duplicate_text": 1}}
    assert "p1 (empty_text)" in caplog.text


def test_beir_corpus_file_and_folder(tmp_path):
    corpus = write(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "a", "title": "A", "text": "alpha text"}).encode(),
            json.dumps({"_id": "b", "text": "beta text", "metadata": {}}).encode(),
        ],
    )
    by_file, by_folder = load_passages(corpus).records, load_passages(tmp_path).records
    assert by_file == by_folder == [Passage(id="a", title="A", text="alpha text"), Passage(id="b", text="beta text")]


def test_limit_keeps_first_usable_passages():
    assert [p.id for p in load_passages(["one x", "", "two x", "three x"], limit=2).records] == ["p0", "p2"]


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(InputError, match="the corpus has no usable passages"):
        load_passages([])
    empty = write(tmp_path / "corpus.jsonl", [b""])
    with pytest.raises(InputError, match=r"corpus.jsonl: the corpus has no usable passages \(0 read"):
        load_passages(empty)


def test_only_blank_passages_is_an_error():
    with pytest.raises(InputError, match=r"no usable passages \(2 read, 2 blank or duplicate\)"):
        load_passages([" ", "\n\t"])


def test_duplicate_ids_name_both_lines(tmp_path):
    corpus = write(
        tmp_path / "corpus.jsonl",
        [b'{"_id": "x", "text": "one"}', b'{"_id": "y", "text": "two"}', b'{"_id": "x", "text": "three"}'],
    )
    with pytest.raises(InputError, match=r"corpus.jsonl:3: duplicate passage id 'x' \(first seen at .*corpus.jsonl:1\)"):
        load_passages(corpus)


def test_invalid_json_names_the_line(tmp_path):
    corpus = write(tmp_path / "corpus.jsonl", [b'{"_id": "x", "text": "one"}', b'{"_id": "y", "text": '])
    with pytest.raises(InputError, match=r"corpus.jsonl:2: invalid JSON"):
        load_passages(corpus)


def test_non_utf8_bytes_name_the_line(tmp_path):
    corpus = write(tmp_path / "corpus.jsonl", [b'{"_id": "x", "text": "one"}', b'{"_id": "y", "text": "caf\xe9"}'])
    with pytest.raises(InputError, match=r"corpus.jsonl:2: not valid UTF-8"):
        load_passages(corpus)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"text": "no id"}', "has no '_id'"),
        (b'{"_id": "z", "text": 5}', "has no string 'text'"),
        (b'["a", "list"]', "expected a JSON object"),
    ],
)
def test_malformed_records_name_the_line(tmp_path, line, message):
    corpus = write(tmp_path / "corpus.jsonl", [b'{"_id": "x", "text": "one"}', line])
    with pytest.raises(InputError, match=f"corpus.jsonl:2: .*{message}"):
        load_passages(corpus)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_passages(tmp_path / "nope.jsonl")
