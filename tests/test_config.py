"""The configuration schema: defaults, unknown keys, bad values, loading files, the hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragguard.config import Config, SamplingConfig, load_config
from ragguard.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_documented() -> None:
    cfg = Config()
    assert cfg.sampling.samples == 5 and cfg.sampling.seed == 0
    assert cfg.generator.model == "embedded" and cfg.embedder.model == "embedded"
    assert cfg.retrieval.index is None
    assert cfg.consistency.similarity_threshold == 0.8 and cfg.consistency.consistent_agreement == 0.8
    # An empty mapping, None and no file all give the same default.
    assert Config.from_dict({}) == cfg
    assert Config.from_dict(None) == cfg
    assert load_config(None) == cfg


def test_from_dict_reads_values() -> None:
    cfg = Config.from_dict({"sampling": {"samples": 3, "temperature": 1}, "retrieval": {"top_k": 0}})
    assert cfg.sampling.samples == 3
    assert cfg.sampling.temperature == 1.0 and isinstance(cfg.sampling.temperature, float)
    assert cfg.retrieval.top_k == 0
    assert cfg.generator == Config().generator  # untouched sections keep their defaults


def test_unknown_section_names_it_and_lists_the_sections() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"sampler": {"samples": 3}})
    message = str(info.value)
    assert "'sampler'" in message
    for section in ("generator", "sampling", "retrieval", "embedder", "consistency", "prompt"):
        assert section in message


def test_unknown_key_names_it_and_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"sampling": {"sample": 3}}, source="my.yaml")
    message = str(info.value)
    assert "'sampling.sample'" in message
    assert "my.yaml" in message
    for key in ("sampling.samples", "sampling.seed", "sampling.temperature", "sampling.top_p", "sampling.top_k"):
        assert key in message


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sampling": {"samples": 0}}, "sampling.samples"),
        ({"sampling": {"samples": 65}}, "sampling.samples"),
        ({"sampling": {"samples": "five"}}, "sampling.samples"),
        ({"sampling": {"samples": 2.5}}, "sampling.samples"),
        ({"sampling": {"temperature": 0}}, "sampling.temperature"),
        ({"sampling": {"temperature": "hot"}}, "sampling.temperature"),
        ({"sampling": {"top_p": 1.5}}, "sampling.top_p"),
        ({"sampling": {"top_p": 0}}, "sampling.top_p"),
        ({"sampling": {"top_k": True}}, "sampling.top_k"),
        ({"sampling": {"seed": -1}}, "sampling.seed"),
        ({"retrieval": {"top_k": True}}, "retrieval.top_k"),
        ({"generator": {"dtype": "int8"}}, "generator.dtype"),
        ({"generator": {"device": "tpu"}}, "generator.device"),
        ({"generator": {"load_in_4bit": "yes"}}, "generator.load_in_4bit"),
        ({"consistency": {"on_flagged": "ignore"}}, "consistency.on_flagged"),
        ({"consistency": {"consistent_agreement": 0}}, "consistency.consistent_agreement"),
        ({"embedder": {"model": None}}, "embedder.model"),
    ],
)
def test_bad_values_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'"):
        Config.from_dict(data)


def test_bad_value_message_shows_the_value() -> None:
    with pytest.raises(ConfigError, match=r"'sampling\.top_p' has bad value 1\.5"):
        Config.from_dict({"sampling": {"top_p": 1.5}})
    with pytest.raises(ConfigError, match=r"'generator\.dtype' has bad value 'int8'.*float32"):
        Config.from_dict({"generator": {"dtype": "int8"}})


def test_section_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="'sampling' must be a mapping"):
        Config.from_dict({"sampling": 5})


def test_replace_validates_again() -> None:
    cfg = Config().replace("sampling", samples=3)
    assert cfg.sampling.samples == 3
    with pytest.raises(ConfigError, match="sampling.samples"):
        Config().replace("sampling", samples=0)
    with pytest.raises(ConfigError, match="sampling.temperature"):
        SamplingConfig(temperature=-0.1)


def test_config_error_is_a_usage_error_and_a_value_error() -> None:
    assert issubclass(ConfigError, UsageError) and issubclass(ConfigError, ValueError)
    assert ConfigError.exit_code == 2
    with pytest.raises(ValueError):
        Config.from_dict({"nope": {}})


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(missing)
    assert str(missing) in str(info.value)


def test_load_invalid_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  samples: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_load_non_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_load_unknown_key_from_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("sampling:\n  temprature: 0.7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "sampling.temprature" in str(info.value) and str(path) in str(info.value)
    assert "sampling.temperature" in str(info.value)


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    assert load_config(path) == Config()


@pytest.mark.parametrize("value", ["idx", "./idx", "sub/idx", "../idx"])
def test_relative_index_path_is_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "idx").mkdir()  # "idx" exists, "sub/idx" and "../idx" do not: all are resolved the same way
    path = folder / "c.yaml"
    path.write_text(f"retrieval:\n  index: {value}\n", encoding="utf-8")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path)
    assert cfg.retrieval.index == str((folder / value).resolve())


def test_a_relative_calibration_file_is_resolved_against_the_config_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "c.yaml"
    path.write_text("consistency:\n  calibration: cal.json\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # run from elsewhere, as CI or a server does
    cfg = load_config(path)
    assert cfg.consistency.calibration == str(folder / "cal.json")
    assert cfg.hash() == Config().replace("consistency", calibration="cal.json").hash()  # the file never counts
    path.write_text("consistency:\n  calibration: auto\n", encoding="utf-8")
    assert load_config(path).consistency.calibration == "auto"


def test_absolute_index_path_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    target = tmp_path / "somewhere" / "index"
    path.write_text(f"retrieval:\n  index: {target}\n", encoding="utf-8")
    assert load_config(path).retrieval.index == str(target)


def test_hub_model_id_is_not_turned_into_a_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("generator:\n  model: Qwen/Qwen2.5-0.5B-Instruct\n", encoding="utf-8")
    assert load_config(path).generator.model == "Qwen/Qwen2.5-0.5B-Instruct"


def test_hash_is_stable_and_tracks_every_value() -> None:
    a, b = Config(), Config()
    assert a.hash() == a.hash() == b.hash()
    assert len(a.hash()) == 16
    changed = {
        Config().replace("sampling", samples=3).hash(),
        Config().replace("sampling", seed=1).hash(),
        Config().replace("retrieval", top_k=4).hash(),
        Config().replace("prompt", system="Answer briefly.").hash(),
        Config().replace("consistency", similarity_threshold=0.75).hash(),
    }
    assert a.hash() not in changed
    assert len(changed) == 5
    # Same values reached another way give the same hash.
    assert Config.from_dict({"sampling": {"samples": 3}}).hash() == Config().replace("sampling", samples=3).hash()


CONFIG_FILES = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "configs").glob("*.yml"))
# configs/tune-*.yaml are `ragguard tune` configs, checked in tests/test_tune.py.
CONFIG_FILES = [p for p in CONFIG_FILES if not p.name.startswith("tune-")]


@pytest.mark.skipif(not CONFIG_FILES, reason="no configs/*.yaml in this checkout")
@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    if cfg.retrieval.index is not None:
        assert Path(cfg.retrieval.index).is_absolute()


def test_default_yaml_is_the_embedded_default() -> None:
    path = ROOT / "configs" / "default.yaml"
    if not path.is_file():
        pytest.skip("configs/default.yaml is absent")
    assert load_config(path).hash() == Config().hash()


def test_every_consistency_setting_is_read_from_the_config_with_the_same_default() -> None:
    import dataclasses

    from ragguard.config import ConsistencyConfig
    from ragguard.core.consistency import ConsistencySettings

    config_fields = {f.name: f for f in dataclasses.fields(ConsistencyConfig)}
    setting_fields = dataclasses.fields(ConsistencySettings)
    for f in setting_fields:
        assert f.name in config_fields, f"ConsistencySettings.{f.name} has no consistency.{f.name} config key"
        assert config_fields[f.name].default == f.default, f.name
    assert ConsistencyConfig().settings() == ConsistencySettings()
    # Every value set in the config arrives in the settings, none left at its default.
    changed = {"similarity_threshold": 0.7, "consistent_agreement": 0.6, "grounding_threshold": 0.3,
               "on_flagged": "abstain", "clustering": "entailment", "grounding": "entailment",
               "entailment_threshold": 0.4, "nli_contradiction_threshold": 0.9, "near_identical": 0.99,
               "claim_support": 0.7, "min_confidence": 0.6}
    assert set(changed) == {f.name for f in setting_fields}
    settings = Config.from_dict({"consistency": {"nli_model": "some/nli", **changed}}).consistency.settings()
    assert dataclasses.asdict(settings) == changed


def test_the_calibration_keys_do_not_change_the_hash() -> None:
    # A calibration fitted on an audit recognises the config it was fitted for by this hash.
    base = Config().hash()
    assert Config().replace("consistency", calibration="cal.json", min_confidence=0.7).hash() == base
    assert Config().replace("consistency", calibration=None).hash() == base
    with pytest.raises(ConfigError, match="min_confidence"):
        Config().replace("consistency", min_confidence=1.5)
    # The setup hash leaves out the index folder too; the config hash keeps it.
    moved = Config().replace("retrieval", index="/srv/index")
    assert moved.setup_hash() == Config().setup_hash() and moved.hash() != base


def test_replace_names_an_unknown_section_or_key_and_refuses_an_infinite_temperature() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'sampling.sampels'; valid keys are: sampling.samples"):
        Config().replace("sampling", sampels=3)
    with pytest.raises(ConfigError, match=r"unknown config key 'sampler'; valid keys are: generator, sampling"):
        Config().replace("sampler", samples=3)
    for key, value in (("temperature", float("inf")), ("repetition_penalty", float("inf"))):
        with pytest.raises(ConfigError, match=f"sampling.{key}' has bad value inf: expected a finite number"):
            Config().replace("sampling", **{key: value})


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sampling:\n  samples: 3\n  samples: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gives the key 'samples' twice \(line 3\): keep one"):
        load_config(path)
    path.write_text("!!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML at line 1"):  # still a safe loader: no tag runs
        load_config(path)


def test_a_tune_config_given_to_ask_says_where_it_belongs() -> None:
    root = Path(__file__).resolve().parent.parent
    with pytest.raises(ConfigError, match=r"is a tune config \(sections .*\): pass it to `ragguard tune --config`"):
        load_config(root / "configs" / "tune-qlora.yaml")
