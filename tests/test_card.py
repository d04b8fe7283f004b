"""Dataset cards: statistics from the data, provenance from the .meta.json chain, updates that keep
what a person wrote."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

import sftdata
from sftdata.formats.card import BEGIN, language_of, make_card
from sftdata.writers import meta_path

REPO = Path(__file__).resolve().parents[1]


def _matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize("text, language", [
    ("안녕하세요, 만나서 반갑습니다.", "ko"), ("今日は良い天気ですね。", "ja"), ("细胞理论是生物科学的一个理论", "zh"),
    ("Describe a process of making crepes.", "en"), ("Привет, как дела?", "ru"), ("12345 !!!", None)])
def test_language_from_script_shares(text, language):
    assert language_of(text)[0] == language


def test_card_of_the_korean_example_names_template_eos_and_rejects(tmp_path):
    out = tmp_path / "ko.jsonl"
    sftdata.convert([REPO / "examples/ko_qa/labels"], out, mapping=REPO / "examples/ko_qa/mapping.yaml",
                    template="qa_ko", eos="</s>")
    result = make_card(out)
    assert result.output == tmp_path / "README.md" and result.splits == {"train": 11}
    card = result.output.read_text(encoding="utf-8")
    matter = _matter(card)
    assert matter["language"] == ["ko"] and matter["size_categories"] == ["n<1K"] and matter["license"] == "unknown"
    assert "`qa_ko`" in card and "EOS `</s>`" in card
    assert "rejected 1" in card and "blank 1" in card


def test_steps_are_followed_back_through_parents(shared_data, tmp_path):
    records = tmp_path / "records.jsonl"
    sftdata.convert([shared_data / "alpaca_zh_demo.json"], records, preset="alpaca")
    # a step another command wrote (e.g. synth): its sidecar names its model, prompt hash and parent
    synth = tmp_path / "synth.jsonl"
    synth.write_bytes(records.read_bytes())
    meta_path(synth).write_bytes(orjson.dumps({
        "command": "synth", "created": "2026-01-01T00:00:00Z", "model": "qwen2.5-7b-instruct",
        "prompt_sha256": "ab" * 32, "sources": [{"path": str(records)}], "parents": [str(meta_path(records))],
        "counts": {"read": 1000, "written": 990, "rejected": 4, "filtered": 6, "by_reason": {"too_short": 6}}}))
    rendered = tmp_path / "sft.jsonl"
    sftdata.render([synth], rendered, template="alpaca", eos="</s>")
    card = make_card(rendered, tmp_path / "card" / "README.md", title="zh demo").output.read_text(encoding="utf-8")
    steps = [line for line in card.splitlines() if line[:2] in ("1.", "2.", "3.")]
    assert [s.split("**")[1] for s in steps] == ["convert", "synth", "render"]
    assert "qwen2.5-7b-instruct" in steps[1] and "ab" * 32 in steps[1] and "filtered 6" in steps[1]
    assert "too_short 6" in card and _matter(card)["language"][0] == "zh"


def test_updating_a_card_keeps_what_a_person_wrote(shared_data, tmp_path):
    records = tmp_path / "id.jsonl"
    sftdata.convert([shared_data / "identity.json"], records, preset="alpaca")
    readme = tmp_path / "README.md"
    readme.write_text("---\npretty_name: Who am I\nlicense: mit\n---\n\nHand-written intro.\n", encoding="utf-8")
    make_card(records)
    make_card(records)
    text = readme.read_text(encoding="utf-8")
    matter = _matter(text)
    assert matter["pretty_name"] == "Who am I" and matter["license"] == "mit" and matter["language"] == ["zh", "en"]
    assert "Hand-written intro." in text and text.count(BEGIN) == 1
    make_card(records, license="apache-2.0")
    assert _matter(readme.read_text(encoding="utf-8"))["license"] == "apache-2.0"


def test_card_of_an_exported_hf_folder_and_the_cli(shared_data, tmp_path):
    records = tmp_path / "a.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], records, preset="alpaca")
    folder = tmp_path / "hf"
    sftdata.export(records, folder, "hf")
    before = _matter((folder / "README.md").read_text(encoding="utf-8"))
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "card", str(folder), "--license", "cc-by-4.0",
                             "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"] == {"train": 999}
    after = _matter((folder / "README.md").read_text(encoding="utf-8"))
    assert after["license"] == "cc-by-4.0" and after["dataset_info"] == before["dataset_info"]
    assert after["configs"] == before["configs"]


def test_card_names_sources_by_relative_path_lists_a_split_once_and_no_template_for_a_token_count(
        tmp_path, smollm2_tokenizer_dir):
    import sftdata

    repo = Path(__file__).resolve().parents[1]
    records = tmp_path / "records.jsonl"
    sftdata.convert([repo / "examples" / "ko_qa" / "labels"], records, mapping=repo / "examples" / "ko_qa" / "mapping.yaml")
    kept = tmp_path / "kept.jsonl"  # counts tokens with a template, renders nothing
    sftdata.filter([records], kept, max_tokens=512, tokenizer=str(smollm2_tokenizer_dir), template="qa_ko")
    sftdata.split([kept], tmp_path / "split", eval_ratio=0.3, seed=1)
    card = sftdata.card(tmp_path / "split").output.read_text(encoding="utf-8")
    assert card.count("**split**") == 1
    assert "life/LIFE_0001.json" in card and "science/SCI_0001.json" in card  # AI-Hub repeats bare names
    assert "Records, not rendered text" in card


def test_card_records_the_template_arguments_of_rendered_data(tmp_path):
    import sftdata

    rows = tmp_path / "chats.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요."}]}\n',
                    encoding="utf-8")
    out = tmp_path / "sft.jsonl"
    sftdata.convert([rows], out, preset="trl", template="chatml_think", template_args=["enable_thinking=false"])
    card = sftdata.card(out).output.read_text(encoding="utf-8")
    assert '`chatml_think`' in card and 'template arguments `{"enable_thinking":false}`' in card


def test_card_lists_every_source_of_every_input_in_the_chain(shared_data, tmp_path):
    a, b = tmp_path / "a.records.jsonl", tmp_path / "b.records.jsonl"
    sftdata.convert([shared_data / "alpaca_en_demo.json"], a, preset="alpaca")
    sftdata.convert([REPO / "examples/ko_qa/labels"], b, mapping=REPO / "examples/ko_qa/mapping.yaml")
    c = tmp_path / "c.jsonl"
    subprocess.run([sys.executable, str(REPO / "cli.py"), "dedup", str(a), str(b), "-o", str(c)], check=True,
                   capture_output=True)
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "card", str(c), "--json"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    table = card.split("## Sources")[1].split("<!--")[0]
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines() if line.startswith("| ") and "sha256" not in line]
    assert len(rows) == 7 and any(r.endswith("alpaca_en_demo.json") for r in rows)  # 1 file + 6 labelled documents
    assert sum(r.endswith(("LIFE_0001.json", "LIFE_0002.json", "LIFE_0003.json", "SCI_0001.json", "SCI_0002.json",
                           "SCI_0003.json")) for r in rows) == 6
    assert "a.records.jsonl" not in table and "b.records.jsonl" not in table  # made by a step of the chain
    # an input made by no step sftdata recorded is a source itself; a raw file reached twice is listed once
    hand = tmp_path / "hand.jsonl"
    hand.write_text('{"instruction": "안녕?", "output": "안녕하세요."}\n', encoding="utf-8")
    d = tmp_path / "d.jsonl"
    sftdata.dedup([a, hand, a], d)
    card = make_card(d, tmp_path / "d" / "README.md").output.read_text(encoding="utf-8")
    table = card.split("## Sources")[1]
    assert table.count("alpaca_en_demo.json") == 1 and "hand.jsonl" in table
